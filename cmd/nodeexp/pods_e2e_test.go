package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	f := &podFixture{t: t, sys: t.TempDir(), logDir: filepath.Join(t.TempDir(), "pods")}
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
