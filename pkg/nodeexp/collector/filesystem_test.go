package collector

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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
		if fc.watch >= 0 {
			t.Errorf("%s: a mountinfo outside procfs is watched (its changes would be missed)", step.name)
		}
		if len(fc.mounts) != len(slices.DeleteFunc(splitLines(step.table), func(s string) bool { return s == "" })) {
			t.Errorf("%s: cache holds %d lines, want one per line of the table", step.name, len(fc.mounts))
		}
	}
}

func splitLines(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }

// TestReadMountsWatchesTheTable checks that the mount table is read again
// only when the kernel says it changed: it mounts and unmounts a tmpfs in
// a mount namespace of its own (a child process of the test, as root), with
// the collector's proc path pointing at the child's own /proc/self.
func TestReadMountsWatchesTheTable(t *testing.T) {
	if os.Getenv("NODEEXP_MOUNT_WATCH_CHILD") == "1" {
		mountWatchChild(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to unshare a mount namespace and mount a tmpfs")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReadMountsWatchesTheTable$", "-test.v")
	cmd.Env = append(os.Environ(), "NODEEXP_MOUNT_WATCH_CHILD=1")
	// Go makes / private (recursively) in the child's new namespace, so
	// nothing the child mounts is seen outside it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestReadMountsWatchesTheTable") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func mountWatchChild(t *testing.T) {
	proc := t.TempDir()
	if err := os.Symlink("/proc/self", filepath.Join(proc, "1")); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ProcPath = proc
	c, err := newFilesystemCollector(&cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	fc := c.(*filesystemCollector)
	dir := t.TempDir()
	has := func(ms []*mountLine) bool {
		return slices.ContainsFunc(ms, func(m *mountLine) bool { return m.labels.mountPoint == dir && m.labels.fsType == "tmpfs" })
	}
	step := func(name string, wantReads int, wantMount bool) {
		t.Helper()
		ms, err := fc.readMounts()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if fc.reads != wantReads {
			t.Errorf("%s: mountinfo read %d times, want %d", name, fc.reads, wantReads)
		}
		if has(ms) != wantMount {
			t.Errorf("%s: tmpfs on %s reported %v, want %v", name, dir, has(ms), wantMount)
		}
	}
	step("first", 1, false)
	if fc.watch < 0 {
		t.Fatal("/proc/self/mountinfo is not watched")
	}
	step("unchanged", 1, false)
	if err := unix.Mount("nodeexp-test", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	step("mounted", 2, true)
	step("unchanged after the mount", 2, true)
	// A remount changes only options: node_filesystem_readonly follows.
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	step("remounted read-only", 3, true)
	if ms, _ := fc.readMounts(); !slices.ContainsFunc(ms, func(m *mountLine) bool { return m.labels.mountPoint == dir && m.ro == 1 }) {
		t.Error("the read-only remount is not seen")
	}
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	step("unmounted", 4, false)
	fc.lastRead = time.Now().Add(-2 * mountsRecheck)
	step("read again after mountsRecheck", 5, false)
}
