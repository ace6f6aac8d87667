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

// rnResults are the nodekit pod's figures from its cgroups on the real
// node; Idle is nil when the area failed before measuring, Burst when it
// failed before the burst was shipped.
type rnResults struct {
	Image, Kubelet, Containerd string
	IdlePods                   int
	Window                     time.Duration
	Idle                       *rnIdle
	Burst                      *rnBurst
}

// rnIdle is the pod and its containers while idle.
type rnIdle struct {
	Containers []rnContainer
	WorkingSet int64   // the pod's
	CPUPct     float64 // the pod's, % of a core
}

// rnContainer is one container's idle figures.
type rnContainer struct {
	Name       string
	WorkingSet int64
	Limit      string
	CPUPct     float64
}

// rnBurst is a pod's log burst shipped.
type rnBurst struct {
	Lines             int
	MB                float64
	Took              time.Duration
	CPU               float64 // CPU-seconds of the nodekit pod
	Peak, PeakLogship int64   // working sets
	LogshipLimit      string
}

// MBPerCPU is MB of the burst per CPU-second of the pod.
func (b *rnBurst) MBPerCPU() float64 { return b.MB / b.CPU }

// benchRealnode measures the DaemonSet's footprint as the kubelet sees it:
// the nodekit pod's cgroups on the real node (test/realnode), installed
// from `make image` by README.md's steps, idle with 30 pods and while a pod
// logs 40 MB as fast as it can; into r.Realnode.
func benchRealnode(ctx context.Context, r *report, cfg config, logger *slog.Logger) (err error) {
	res := &rnResults{Kubelet: kubeapi.Version, Containerd: realnode.ContainerdVersion, IdlePods: rnIdlePods}
	r.Realnode = res
	fail := func(err error) error { return err }

	readme, err := os.ReadFile("README.md")
	if err != nil {
		return fail(err)
	}
	steps, err := realnode.ParseInstall(string(readme))
	if err != nil {
		return fail(err)
	}
	res.Image = steps.ImageRef
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
		if cerr := node.Close(); cerr != nil {
			err = errors.Join(err, cerr)
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
	res.Window = window
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
	idleRes := &rnIdle{WorkingSet: idle.WorkingSet, CPUPct: cpuPct("")}
	for _, c := range pod.Spec.Containers {
		idleRes.Containers = append(idleRes.Containers, rnContainer{Name: c.Name, WorkingSet: after[c.Name].WorkingSet,
			Limit: c.Resources.Limits.Memory().String(), CPUPct: cpuPct(c.Name)})
	}
	res.Idle = idleRes

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
	res.Burst = &rnBurst{Lines: rnBurstLines, MB: float64(rnBurstLines) * 100 / 1e6, Took: took,
		CPU: float64(end.CPUNanos-startBurst.CPUNanos) / 1e9, Peak: peak, PeakLogship: peakLogship, LogshipLimit: rnLimit(pod, "logship")}
	return nil
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
