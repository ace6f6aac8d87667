package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestContainerLogLayout checks the demo's pods get the kubelet's layout
// logship discovers (test/podlogs): the CRI file under pods/, the symlink
// under containers/ named after the stream with the test bed's container
// ID, one CRI line per message line, and rotation by rename.
func TestContainerLogLayout(t *testing.T) {
	root := t.TempDir()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", UID: "1234-uid"}}
	clock := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	c, err := newContainerLog(root, pod, "nginx", func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	if !strings.HasPrefix(c.Stream, "web_shop_nginx-") || len(c.Stream) != len("web_shop_nginx-")+64 {
		t.Errorf("stream %q is not <pod>_<namespace>_<container>-<64 hex id>", c.Stream)
	}
	wantPath := filepath.Join(root, "pods", "shop_web_1234-uid", "nginx", "0.log")
	if target, err := os.Readlink(filepath.Join(root, "containers", c.Stream+".log")); err != nil || target != wantPath {
		t.Errorf("symlink -> %q (%v), want %q", target, err, wantPath)
	}

	if err := c.Print("stdout", "one\n\ttwo"); err != nil {
		t.Fatal(err)
	}
	rotated, err := c.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if want := wantPath + ".20261122-000000.000000"; rotated != want {
		t.Errorf("rotated to %q, want %q", rotated, want)
	}
	if err := c.Print("stderr", "three"); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		rotated:  "2026-11-22T00:00:00Z stdout F one\n2026-11-22T00:00:00Z stdout F \ttwo\n",
		wantPath: "2026-11-22T00:00:00Z stderr F three\n",
	} {
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s = %q, want %q", filepath.Base(path), got, want)
		}
	}
}

func TestSummarize(t *testing.T) {
	body := `# HELP node_load1 1m load average.
# TYPE node_load1 gauge
node_load1 0.5
# TYPE node_filesystem_avail_bytes gauge
node_filesystem_avail_bytes{mountpoint="/boot"} 1
node_filesystem_avail_bytes{mountpoint="/"} 2
# TYPE x_total counter
x_total{a="1"} 1
x_total{a="2"} 2
x_total{a="3"} 3
`
	fams, samples, picked := summarize(body, []series{{"x_total", ""}, {"node_filesystem_avail_bytes{", `mountpoint="/"}`}, {"absent", ""}}, 2)
	if fams != 3 || samples != 6 {
		t.Errorf("families, samples = %d, %d; want 3, 6", fams, samples)
	}
	want := []string{`x_total{a="1"} 1`, `x_total{a="2"} 2`, `node_filesystem_avail_bytes{mountpoint="/"} 2`}
	if strings.Join(picked, "\n") != strings.Join(want, "\n") {
		t.Errorf("picked %q, want %q", picked, want)
	}
}

func TestShellJoin(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"query", "-n", "shop"}, "query -n shop"},
		{[]string{"web*"}, "'web*'"},
		{[]string{"stats count(*) by x"}, "'stats count(*) by x'"},
		{[]string{"it's"}, `'it'\''s'`},
		{[]string{""}, "''"},
	} {
		if got := shellJoin(tt.args); got != tt.want {
			t.Errorf("shellJoin(%q) = %s, want %s", tt.args, got, tt.want)
		}
	}
}

func TestTextHelpers(t *testing.T) {
	if got := oneLine("a\n  b\tc", 100); got != "a b c" {
		t.Errorf("oneLine = %q", got)
	}
	if got := oneLine("abcdef", 3); got != "abc…" {
		t.Errorf("oneLine truncated = %q", got)
	}
	if got := maskKey("ASIAABCDEFGHIJKL"); got != "ASIA…IJKL" {
		t.Errorf("maskKey = %q", got)
	}
	if got := maskKey("short"); got != "short" {
		t.Errorf("maskKey(short) = %q", got)
	}
}

// TestStoryPods keeps the story's promise: two pods with different allowed
// roles and one restricted pod asking for a role its namespace forbids.
func TestStoryPods(t *testing.T) {
	pods := storyPods()
	var allowed, denied int
	roles := map[string]bool{}
	for _, p := range pods {
		if p.wantDenied {
			denied++
			if strings.Contains(p.allowed, p.role) {
				t.Errorf("restricted pod %s asks for %s, which its namespace allows (%s)", p.name, p.role, p.allowed)
			}
			continue
		}
		allowed++
		roles[p.role] = true
	}
	if allowed != 2 || len(roles) != 2 || denied != 1 {
		t.Errorf("%d allowed pods with %d roles and %d restricted pods; want 2, 2, 1", allowed, len(roles), denied)
	}
}

// TestRunRefusesBadArguments covers the command line without root.
func TestRunRefusesBadArguments(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want int
	}{
		{"unknown flag", []string{"--nope"}, 2},
		{"stray argument", []string{"extra"}, 2},
		{"help", []string{"--help"}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if got := run(tt.args, &stdout, &stderr); got != tt.want {
				t.Errorf("run(%q) = %d, want %d; stderr: %s", tt.args, got, tt.want, stderr.String())
			}
		})
	}
}

func TestRemoveStaleWorkDirs(t *testing.T) {
	tmp := t.TempDir()
	now := time.Now()
	old := now.Add(-2 * staleGrace)
	// A process that has exited: a reaped child's pid.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name      string
		pid       string // "" = no pid file
		mtime     time.Time
		wantStale bool
	}{
		{"live run", strconv.Itoa(os.Getpid()), old, false},
		{"dead run", strconv.Itoa(dead.Process.Pid), old, true},
		{"garbage pid file", "not-a-pid", old, true},
		{"no pid file, old", "", old, true},
		{"no pid file, just created", "", now, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(tmp, workDirPrefix+strings.ReplaceAll(tt.name, " ", "-"))
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if tt.pid != "" {
				if err := os.WriteFile(filepath.Join(dir, pidFile), []byte(tt.pid+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chtimes(dir, tt.mtime, tt.mtime); err != nil {
				t.Fatal(err)
			}
			if got := staleWorkDir(dir, now); got != tt.wantStale {
				t.Errorf("staleWorkDir = %v, want %v", got, tt.wantStale)
			}
		})
	}
	removed, err := removeStaleWorkDirs(tmp, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 3 {
		t.Errorf("removed %q, want the 3 stale dirs", removed)
	}
	for _, dir := range removed {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s still exists", dir)
		}
	}
}
