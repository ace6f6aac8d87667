package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodekit/nodekit/test/kubeapi"
	"github.com/nodekit/nodekit/test/realnode"
)

const (
	rnIdlePods   = 30
	rnBurstLines = 400_000 // of 100 bytes: 40 MB of log text
	rnGroup      = "/aws/containerinsights/my-cluster/application"
)

// benchRealnode measures the DaemonSet's footprint as the kubelet sees it:
// the nodekit pod's cgroups on the real node (test/realnode), installed
// from `make image` by README.md's steps, idle with 30 pods and while a pod
// logs 40 MB as fast as it can.
func benchRealnode(ctx context.Context, r *report, cfg config, logger *slog.Logger) (s *section) {
	s = &section{Title: "real node: the nodekit pod's footprint from its cgroups"}
	measured := false
	defer func() {
		if !measured {
			r.notMeasured("pod", "nodekit pod working set, idle, 30 pods", "", s.Err)
		}
	}()
	fail := func(err error) *section { s.Err = err; return s }

	readme, err := os.ReadFile("README.md")
	if err != nil {
		return fail(err)
	}
	steps, err := realnode.ParseInstall(string(readme))
	if err != nil {
		return fail(err)
	}
	repo, err := os.Getwd()
	if err != nil {
		return fail(err)
	}
	// Kubelet defaults for rotation (10Mi, 5 files), as on a real node.
	node, err := realnode.New(ctx, realnode.Config{ContainerLogMaxSize: "10Mi", ContainerLogMaxFiles: 5, Logger: logger.With("component", "realnode")})
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err := node.Close(); err != nil {
			s.Err = errors.Join(s.Err, err)
		}
	}()
	kit, err := node.InstallNodekit(ctx, realnode.InstallConfig{
		Steps: steps, ImageArchive: filepath.Join(repo, steps.Archive), DeployDir: filepath.Join(repo, "deploy"),
	})
	if err != nil {
		return fail(err)
	}

	// 30 pods with roles, each logging a line every 10 s.
	client := node.Kube.Client()
	if _, err := kubeapi.EnsureNamespace(ctx, client, "bench", map[string]string{"iam.amazonaws.com/allowed-roles": `["app"]`}); err != nil {
		return fail(err)
	}
	replicas := int32(rnIdlePods)
	if err := rnDeploy(ctx, node, "idle", replicas, map[string]string{"iam.amazonaws.com/role": "app"},
		`i=0; while true; do echo "idle line $i"; i=$((i+1)); sleep 10; done`); err != nil {
		return fail(err)
	}
	pod, err := kit.Pod(ctx)
	if err != nil {
		return fail(err)
	}
	containers := map[string]string{}
	for _, cs := range pod.Status.ContainerStatuses {
		containers[cs.Name] = strings.TrimPrefix(cs.ContainerID, "containerd://")
	}
	// Let prefetching, the first shipments and the first scrapes settle.
	if err := sleep(ctx, 20*time.Second); err != nil {
		return fail(err)
	}
	window := 30 * time.Second
	usage := func() (map[string]realnode.Usage, error) {
		out := map[string]realnode.Usage{}
		for name, id := range containers {
			u, err := realnode.PodUsage(pod.UID, id)
			if err != nil {
				return nil, err
			}
			out[name] = u
		}
		u, err := realnode.PodUsage(pod.UID, "")
		out[""] = u
		return out, err
	}
	before, err := usage()
	if err != nil {
		return fail(err)
	}
	if err := sleep(ctx, window); err != nil {
		return fail(err)
	}
	after, err := usage()
	if err != nil {
		return fail(err)
	}
	idle := after[""]
	cpuPct := func(name string) float64 {
		return float64(after[name].CPUNanos-before[name].CPUNanos) / float64(window.Nanoseconds()) * 100
	}
	idleCPU := cpuPct("")
	r.add(figure{Agent: "pod", Name: fmt.Sprintf("nodekit pod working set, idle, %d pods", rnIdlePods),
		Measured: fmt.Sprintf("%.1f MiB", mib(idle.WorkingSet)), Verdict: info,
		Note: "memory.usage_in_bytes less inactive file pages of the pod's cgroup, as the kubelet counts it"})
	r.add(figure{Agent: "pod", Name: fmt.Sprintf("nodekit pod CPU, idle, %d pods", rnIdlePods),
		Measured: fmt.Sprintf("%.2f%% of a core", idleCPU), Verdict: info, Note: fmt.Sprintf("cpuacct.usage over %v", window)})
	measured = true
	s.addf("The image `%s` from `make image`, installed by README.md's steps on the real node (kubelet %s, containerd %s, cgroup v1), %d pods with roles each logging a line every 10 s.",
		steps.ImageRef, kubeapi.Version, realnode.ContainerdVersion, rnIdlePods)
	s.addf("")
	s.addf("| container | idle working set | memory limit | idle CPU (%% of a core, over %v) |", window)
	s.addf("|---|---|---|---|")
	for _, c := range pod.Spec.Containers {
		s.addf("| %s | %.1f MiB | %s | %.2f%% |", c.Name, mib(after[c.Name].WorkingSet), c.Resources.Limits.Memory(), cpuPct(c.Name))
	}
	s.addf("| **pod** | **%.1f MiB** | | **%.2f%%** |", mib(idle.WorkingSet), idleCPU)

	// The burst: one pod writes 40 MB of 100-byte lines as fast as it can.
	startBurst, err := realnode.PodUsage(pod.UID, "")
	if err != nil {
		return fail(err)
	}
	start := time.Now()
	script := fmt.Sprintf(`pad=$(head -c 80 /dev/zero | tr '\0' x); seq 1 %d | sed "s/^/burst $pad /"; echo burst done; sleep 3600`, rnBurstLines)
	if err := rnDeploy(ctx, node, "burst", 1, nil, script); err != nil {
		return fail(err)
	}
	var peak, peakLogship int64
	shipped := func() int {
		n := 0
		for _, stream := range node.AWS.LogStreams(rnGroup) {
			if strings.HasPrefix(stream, "burst-") {
				n += len(node.AWS.Events(rnGroup, stream))
			}
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Minute)
	for shipped() < rnBurstLines+1 {
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("logship shipped %d of %d burst lines in 10 minutes", shipped(), rnBurstLines+1))
		}
		if u, err := realnode.PodUsage(pod.UID, ""); err == nil {
			peak = max(peak, u.WorkingSet)
		}
		if u, err := realnode.PodUsage(pod.UID, containers["logship"]); err == nil {
			peakLogship = max(peakLogship, u.WorkingSet)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return fail(err)
		}
	}
	took := time.Since(start)
	end, err := realnode.PodUsage(pod.UID, "")
	if err != nil {
		return fail(err)
	}
	cpu := float64(end.CPUNanos-startBurst.CPUNanos) / 1e9
	mb := float64(rnBurstLines) * 100 / 1e6
	r.add(figure{Agent: "pod", Name: "nodekit pod peak working set, 40 MB log burst",
		Measured: fmt.Sprintf("%.1f MiB", mib(peak)), Verdict: info, Note: fmt.Sprintf("logship's container %.1f MiB", mib(peakLogship))})
	r.add(figure{Agent: "pod", Name: "nodekit pod CPU for a 40 MB log burst",
		Measured: fmt.Sprintf("%.2f CPU-s (%.0f MB per CPU-s)", cpu, mb/cpu), Verdict: info,
		Note: fmt.Sprintf("all three containers, from the first line written to the last accepted: %v", took.Round(100*time.Millisecond))})
	s.addf("")
	s.addf("Burst: %d lines of 100 bytes (%.0f MB) written as fast as busybox can, shipped in %v (from the pod's creation). The pod used %.2f CPU-s (%.0f MB per CPU-s); its working set peaked at %.1f MiB, logship's container at %.1f MiB (limit %s).",
		rnBurstLines, mb, took.Round(100*time.Millisecond), cpu, mb/cpu, mib(peak), mib(peakLogship), rnLimit(pod, "logship"))
	return s
}

func rnLimit(pod *corev1.Pod, container string) string {
	for _, c := range pod.Spec.Containers {
		if c.Name == container {
			return c.Resources.Limits.Memory().String()
		}
	}
	return "none"
}

// rnDeploy creates a Deployment of busybox pods running script and waits
// for them to run.
func rnDeploy(ctx context.Context, node *realnode.Node, name string, replicas int32, annotations map[string]string, script string) error {
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: name, Image: realnode.BusyboxImage, ImagePullPolicy: corev1.PullNever,
						Command: []string{"sh", "-c", script}}},
					TerminationGracePeriodSeconds: new(int64(1)),
				},
			},
		},
	}
	client := node.Kube.Client()
	if _, err := client.AppsV1().Deployments("bench").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return err
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		ready := int32(0)
		dep, err := client.AppsV1().Deployments("bench").Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			ready = dep.Status.ReadyReplicas
		}
		if ready == replicas {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("deployment %s: %d of %d pods ready after 3 minutes (%v)", name, ready, replicas, err)
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
