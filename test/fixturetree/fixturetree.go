// Package fixturetree is node_exporter's own fixture tree for nodeexp's
// side-by-side tests and benchmarks: node_exporter v1.12.1's module is
// fetched into the Go module cache, its proc/ and textfile/ fixtures used
// where they are, and its sys.ttar and udev.ttar unpacked into a directory
// of the caller's. Nothing of it is copied into this repository.
package fixturetree

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// NodeExporterVersion is the release whose fixtures (and binary) nodeexp
// is compared with.
const NodeExporterVersion = "v1.12.1"

// ModuleDir returns the directory of node_exporter's module, downloading
// it into the Go module cache if need be.
func ModuleDir(ctx context.Context) (string, error) {
	tmp, err := os.MkdirTemp("", "fixturetree-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", "github.com/prometheus/node_exporter@"+NodeExporterVersion)
	cmd.Dir = tmp // outside any module, so no go.mod is touched
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download node_exporter %s: %w\n%s", NodeExporterVersion, err, out)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("go mod download node_exporter %s: %v %s\n%s", NodeExporterVersion, err, mod.Error, out)
	}
	return mod.Dir, nil
}

// Tree is an unpacked fixture tree.
type Tree struct {
	Fixtures string // collector/fixtures in the module cache
	Sys      string // sys.ttar, unpacked
	Udev     string // udev.ttar's data directory, unpacked
}

// Unpack unpacks the fixture tree under dir.
func Unpack(ctx context.Context, dir string) (Tree, error) {
	mod, err := ModuleDir(ctx)
	if err != nil {
		return Tree{}, err
	}
	fixtures := filepath.Join(mod, "collector", "fixtures")
	for _, a := range []string{"sys.ttar", "udev.ttar"} {
		if err := ExtractTTAR(filepath.Join(fixtures, a), dir); err != nil {
			return Tree{}, fmt.Errorf("unpacking %s: %w", a, err)
		}
	}
	return Tree{Fixtures: fixtures, Sys: filepath.Join(dir, "sys"), Udev: filepath.Join(dir, "udev", "data")}, nil
}

// Args are the command-line flags both exporters run with on the tree:
// node_exporter's end-to-end test's (end-to-end-test.sh) for the collectors
// it enables by default, and node_exporter's defaults for the options
// whose default nodeexp changes (kube-prometheus's exclusions).
func (t Tree) Args() []string {
	return []string{
		"--path.rootfs=" + t.Fixtures,
		"--path.procfs=" + filepath.Join(t.Fixtures, "proc"),
		"--path.sysfs=" + t.Sys,
		"--path.udev.data=" + t.Udev,
		"--collector.arp.device-exclude=nope",
		// With netlink, node_exporter would ask this machine's kernel.
		"--no-collector.arp.netlink",
		"--collector.bcache.priorityStats",
		"--collector.cpu.info",
		"--collector.cpu.info.bugs-include=^(cpu_meltdown|spectre_.*|mds)$",
		"--collector.cpu.info.flags-include=^(aes|avx.?|constant_tsc)$",
		"--collector.hwmon.chip-include=(applesmc|asus_nb_wmi|coretemp|hwmon4|ieee80211|nct6779)",
		"--collector.netclass.ignore-invalid-speed",
		"--collector.netclass.ignored-devices=(dmz|int)",
		"--collector.netdev.device-include=lo",
		"--collector.netdev.device-exclude=",
		"--collector.stat.softirq",
		"--collector.textfile.directory=" + filepath.Join(t.Fixtures, "textfile", "two_metric_files") + "/",
		"--collector.filesystem.mount-points-exclude=^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)",
	}
}
