package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodekit/nodekit/test/kubeapi"
)

// TestPodLabelsFromAPIServer runs nodeexp against a real kube-apiserver
// (test/kubeapi) and a cgroup v2 tree holding one pod cgroup per driver:
// the pod series carry namespace and pod from the node-scoped informer,
// and pods of other nodes are not looked up.
func TestPodLabelsFromAPIServer(t *testing.T) {
	if _, err := kubeapi.EtcdPath(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	srv, err := kubeapi.Start(ctx, kubeapi.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	web, err := kubeapi.CreatePod(ctx, srv.Client(), kubeapi.PodSpec{Namespace: "shop", Name: "web", Node: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := kubeapi.CreatePod(ctx, srv.Client(), kubeapi.PodSpec{Namespace: "jobs", Name: "report", Node: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := kubeapi.CreatePod(ctx, srv.Client(), kubeapi.PodSpec{Namespace: "shop", Name: "elsewhere", Node: "node-b"})
	if err != nil {
		t.Fatal(err)
	}

	sys := t.TempDir()
	cg := filepath.Join(sys, "fs", "cgroup")
	writeCgroup := func(rel string, usageSec int) {
		dir := filepath.Join(cg, rel)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cpu.stat"), fmt.Appendf(nil, "usage_usec %d000000\n", usageSec), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cg, "cgroup.controllers"), []byte("cpu memory io pids\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeCgroup(filepath.Join("kubepods.slice", "kubepods-burstable.slice",
		"kubepods-burstable-pod"+strings.ReplaceAll(string(web.UID), "-", "_")+".slice"), 3)
	writeCgroup(filepath.Join("kubepods", "besteffort", "pod"+string(batch.UID)), 5)
	// A stale cgroup of a pod scheduled elsewhere: reported by uid only.
	writeCgroup(filepath.Join("kubepods", "pod"+string(other.UID)), 7)

	p := startExporter(t, builtBinary(t), "--kubeconfig="+srv.Kubeconfig(), "--node-name=node-a",
		"--path.sysfs="+sys, "--log-format=text")
	// The informer syncs in the background: poll, bounded, until the
	// labels appear (a real external condition, not a timing guess).
	webSeries := fmt.Sprintf(`nodeexp_pod_cpu_usage_seconds_total{namespace="shop",pod="web",uid="%s"} 3`, web.UID)
	var body string
	for deadline := time.Now().Add(time.Minute); ; {
		_, body = get(t, mustReq(t, p.url+"/metrics"))
		if strings.Contains(body, webSeries) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod labels did not appear within a minute; last scrape:\n%s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _ := get(t, mustReq(t, p.url+"/readyz")); code != http.StatusOK {
		t.Errorf("/readyz = %d after scrapes, want 200", code)
	}
	for _, want := range []string{
		fmt.Sprintf(`nodeexp_pod_cpu_usage_seconds_total{namespace="shop",pod="web",uid="%s"} 3`, web.UID),
		fmt.Sprintf(`nodeexp_pod_cpu_usage_seconds_total{namespace="jobs",pod="report",uid="%s"} 5`, batch.UID),
		fmt.Sprintf(`nodeexp_pod_cpu_usage_seconds_total{namespace="",pod="",uid="%s"} 7`, other.UID),
		`node_scrape_collector_success{collector="pods"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
}
