package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// podFixture is a node's pod cgroups (cgroup v2) and the kubelet's pod log
// directories, as nodeexp sees them through --path.sysfs and
// --collector.pods.log-dir.
type podFixture struct {
	t      *testing.T
	sys    string // --path.sysfs
	logDir string // --collector.pods.log-dir
}

func newPodFixture(t *testing.T) *podFixture {
	t.Helper()
	return newPodFixtureAt(t, t.TempDir(), filepath.Join(t.TempDir(), "pods"))
}

func newPodFixtureAt(t *testing.T, sys, logDir string) *podFixture {
	t.Helper()
	f := &podFixture{t: t, sys: sys, logDir: logDir}
	cg := filepath.Join(f.sys, "fs", "cgroup")
	for _, dir := range []string{cg, f.logDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(cg, "cgroup.controllers"), []byte("cpu memory io pids\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// cgroupDir is where the kubelet puts a burstable pod's cgroup with a
// cgroup driver.
func (f *podFixture) cgroupDir(driver, uid string) string {
	if driver == "systemd" {
		return filepath.Join(f.sys, "fs", "cgroup", "kubepods.slice", "kubepods-burstable.slice",
			"kubepods-burstable-pod"+strings.ReplaceAll(uid, "-", "_")+".slice")
	}
	return filepath.Join(f.sys, "fs", "cgroup", "kubepods", "burstable", "pod"+uid)
}

func (f *podFixture) addCgroup(driver, uid string, usageSec int) {
	f.t.Helper()
	dir := f.cgroupDir(driver, uid)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cpu.stat"), fmt.Appendf(nil, "usage_usec %d000000\n", usageSec), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// addLogDir creates the pod's log directory with a container's log in it,
// as the kubelet lays it out.
func (f *podFixture) addLogDir(namespace, pod, uid string) {
	f.t.Helper()
	dir := filepath.Join(f.logDir, namespace+"_"+pod+"_"+uid, "app")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "0.log"), nil, 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *podFixture) remove(driver, namespace, pod, uid string) {
	f.t.Helper()
	for _, dir := range []string{f.cgroupDir(driver, uid), filepath.Join(f.logDir, namespace+"_"+pod+"_"+uid)} {
		if err := os.RemoveAll(dir); err != nil {
			f.t.Fatal(err)
		}
	}
}

// TestPodLabelsFromLogDirectories runs the nodeexp binary on a fixture
// cgroup v2 tree holding pod cgroups of both drivers and on a pod log
// directory tree: the pod series carry namespace and pod from the log
// directories, a pod without one is reported by uid, pods and directories
// that appear later are picked up by the next scrape, and a removed pod
// disappears. --kubeconfig and --node-name are accepted and unused: the
// kubeconfig named does not exist.
func TestPodLabelsFromLogDirectories(t *testing.T) {
	const (
		webUID    = "0c5e4ad8-7bd6-4f5e-9b86-0c2d3b8d6b41"
		reportUID = "1d6f5be9-8ce7-4a6f-8c97-1d3e4c9e7c52"
		strayUID  = "2e7a6cfa-9df8-4b7a-9da8-2e4f5dafad63"
		etcdUID   = "9f86d081884c7d659a2feaa0c55ad015" // a static pod's hash
		lateUID   = "3f8b7d0b-aef9-4c8b-8eb9-3f5a6ebfbe74"
	)
	f := newPodFixture(t)
	f.addCgroup("systemd", webUID, 3)
	f.addLogDir("shop", "web", webUID)
	f.addCgroup("cgroupfs", reportUID, 5)
	f.addLogDir("jobs", "report", reportUID)
	f.addCgroup("systemd", etcdUID, 9)
	f.addLogDir("kube-system", "etcd-node-a", etcdUID)
	// A cgroup with no log directory (its pod's directory was already
	// removed): reported by uid only.
	f.addCgroup("cgroupfs", strayUID, 7)

	p := startExporter(t, builtBinary(t), "--kubeconfig="+filepath.Join(t.TempDir(), "absent.kubeconfig"), "--node-name=node-a",
		"--path.sysfs="+f.sys, "--collector.pods.log-dir="+f.logDir, "--log-format=text")
	series := func(ns, pod, uid string, v int) string {
		return fmt.Sprintf(`nodeexp_pod_cpu_usage_seconds_total{namespace="%s",pod="%s",uid="%s"} %d`, ns, pod, uid, v)
	}
	check := func(step string, want, gone []string) {
		t.Helper()
		code, body := get(t, mustReq(t, p.url+"/metrics"))
		if code != http.StatusOK {
			t.Fatalf("%s: /metrics = %d", step, code)
		}
		for _, s := range want {
			if !strings.Contains(body, s+"\n") {
				t.Errorf("%s: scrape lacks %s", step, s)
			}
		}
		for _, s := range gone {
			if strings.Contains(body, s) {
				t.Errorf("%s: scrape still has %s", step, s)
			}
		}
		if t.Failed() {
			t.Fatalf("%s: pod series scraped:\n%s", step, grepLines(body, "nodeexp_pod_cpu_usage_seconds_total{"))
		}
	}

	check("start", []string{
		series("shop", "web", webUID, 3),
		series("jobs", "report", reportUID, 5),
		series("kube-system", "etcd-node-a", etcdUID, 9),
		series("", "", strayUID, 7),
		"nodeexp_pod_unnamed 1",
		`node_scrape_collector_success{collector="pods"} 1`,
	}, nil)
	if code, _ := get(t, mustReq(t, p.url+"/readyz")); code != http.StatusOK {
		t.Errorf("/readyz = %d after a scrape, want 200", code)
	}

	// A new pod whose cgroup exists before the kubelet made its log
	// directory: by uid first, named once the directory is there.
	f.addCgroup("systemd", lateUID, 1)
	check("cgroup before log directory", []string{series("", "", lateUID, 1)}, nil)
	f.addLogDir("shop", "late", lateUID)
	check("log directory appeared", []string{series("shop", "late", lateUID, 1)}, []string{series("", "", lateUID, 1)})

	f.remove("cgroupfs", "jobs", "report", reportUID)
	check("pod removed", []string{series("shop", "web", webUID, 3), series("shop", "late", lateUID, 1)}, []string{`uid="` + reportUID + `"`})
}

func grepLines(body, substr string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestPodLogDirTheExporterCannotRead is the real node's case: the kubelet
// makes /var/log/pods 0750 root:root and nodeexp runs as nobody. nodeexp
// must refuse to start, naming the directory and the fix, instead of
// serving every pod with empty namespace and pod; with the supplemental
// group 0 the fix names, it starts and names the pods.
func TestPodLogDirTheExporterCannotRead(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test runs nodeexp as uid 65534 and needs root for that; CI runs as root")
	}
	const nobody, webUID = 65534, "0c5e4ad8-7bd6-4f5e-9b86-0c2d3b8d6b41"
	bin := builtBinary(t)
	// Everything nobody needs on the way is world-searchable, except the
	// log directory itself.
	base, err := os.MkdirTemp("", "nodeexp-logdir-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	for _, dir := range []string{base, filepath.Dir(bin)} {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f := newPodFixtureAt(t, filepath.Join(base, "sys"), filepath.Join(base, "log", "pods"))
	f.addCgroup("systemd", webUID, 3)
	f.addLogDir("shop", "web", webUID)
	if err := os.Chown(f.logDir, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f.logDir, 0o750); err != nil {
		t.Fatal(err)
	}
	args := []string{"--path.sysfs=" + f.sys, "--collector.pods.log-dir=" + f.logDir, "--log-format=text"}

	t.Run("nobody", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append(args, "--web.listen-address=127.0.0.1:0")...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{nobody}}}
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("nodeexp as nobody with an unreadable --collector.pods.log-dir: %v, want exit status 1\n%s", err, out)
		}
		for _, want := range []string{f.logDir, "permission denied", "supplementalGroups", "--no-collector.pods"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("error output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("nobody with group 0", func(t *testing.T) {
		p := startExporterWith(t, bin, func(cmd *exec.Cmd) {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{nobody, 0}}}
		}, args...)
		code, body := get(t, mustReq(t, p.url+"/metrics"))
		if code != http.StatusOK {
			t.Fatalf("/metrics = %d", code)
		}
		for _, want := range []string{
			`nodeexp_pod_cpu_usage_seconds_total{namespace="shop",pod="web",uid="` + webUID + `"} 3`,
			"nodeexp_pod_unnamed 0",
		} {
			if !strings.Contains(body, want+"\n") {
				t.Errorf("scrape lacks %s:\n%s", want, grepLines(body, "nodeexp_pod_"))
			}
		}
	})
}
