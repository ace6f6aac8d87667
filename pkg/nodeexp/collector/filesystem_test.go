package collector

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestReadMountsFollowsTheTable checks the per-line cache of mountinfo:
// lines are parsed as node_exporter reads them, a mount that appears is
// reported and one that goes away is not, excluded and duplicate mounts
// are dropped, and malformed lines are skipped.
func TestReadMountsFollowsTheTable(t *testing.T) {
	proc := t.TempDir()
	if err := os.MkdirAll(filepath.Join(proc, "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ProcPath = proc
	c, err := newFilesystemCollector(&cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	fc := c.(*filesystemCollector)
	const (
		root   = "27 1 254:0 / / rw,relatime shared:1 master:2 - ext4 /dev/vda rw\n"
		data   = "41 27 254:1 / /mnt/my\\040data rw,relatime - xfs /dev/vdb ro,attr2\n"
		emro   = "45 27 254:3 / /mnt/sick rw - ext4 /dev/vdd rw,emergency_ro\n"
		proc1  = "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
		dup    = "46 27 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
		broken = "47 27 nonsense / /x rw - ext4 /dev/vde rw\nshort line\n"
	)
	type got struct {
		device, mountPoint, fsType, major, minor string
		ro                                       float64
	}
	for _, step := range []struct {
		name, table string
		want        []got
	}{
		{"first", root + proc1 + data + broken, []got{
			{"/dev/vda", "/", "ext4", "254", "0", 0},
			{"/dev/vdb", "/mnt/my data", "xfs", "254", "1", 1},
		}},
		{"mount added, duplicate ignored", root + proc1 + data + emro + dup, []got{
			{"/dev/vda", "/", "ext4", "254", "0", 0},
			{"/dev/vdb", "/mnt/my data", "xfs", "254", "1", 1},
			{"/dev/vdd", "/mnt/sick", "ext4", "254", "3", 1},
		}},
		{"mount removed", root + emro, []got{
			{"/dev/vda", "/", "ext4", "254", "0", 0},
			{"/dev/vdd", "/mnt/sick", "ext4", "254", "3", 1},
		}},
	} {
		if err := os.WriteFile(filepath.Join(proc, "1", "mountinfo"), []byte(step.table), 0o644); err != nil {
			t.Fatal(err)
		}
		ms, err := fc.readMounts()
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		var g []got
		for _, m := range ms {
			g = append(g, got{m.labels.device, m.labels.mountPoint, m.labels.fsType, m.labels.major, m.labels.minor, m.ro})
		}
		if !slices.Equal(g, step.want) {
			t.Errorf("%s: mounts = %+v, want %+v", step.name, g, step.want)
		}
		if len(fc.mounts) != len(slices.DeleteFunc(splitLines(step.table), func(s string) bool { return s == "" })) {
			t.Errorf("%s: cache holds %d lines, want one per line of the table", step.name, len(fc.mounts))
		}
	}
}

func splitLines(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }
