//go:build e2e

package e2e

// The real node's own contract (test/realnode): a kubelet runs pods with
// real IPs from the bridge CNI and real cgroups, writes their logs where
// real nodes have them, and everything it touched on the host is back as
// it was after Close, and after a run that was killed with SIGKILL.

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodekit/nodekit/test/realnode"
	"github.com/nodekit/nodekit/test/sandbox"
)

// realnodeChild makes the test binary a process that brings a node up and
// waits to be killed, for TestRealNodeKilledRunIsCleaned.
const realnodeChild = "NODEKIT_E2E_REALNODE_CHILD"

func TestRealNodeHarness(t *testing.T) {
	sandbox.RequireRoot(t)
	if os.Getenv(realnodeChild) != "" {
		t.Skip("running as the child of TestRealNodeKilledRunIsCleaned")
	}
	before, err := realnode.HostSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	node, err := realnode.New(ctx, realnode.Config{})
	if err != nil {
		t.Fatalf("starting the real node: %v", err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			node.Close()
		}
	})

	if _, err := realnode.New(ctx, realnode.Config{LockWait: -1}); err == nil || !strings.Contains(err.Error(), "another real node") {
		t.Errorf("a second node on the machine: %v; want a refusal", err)
	}

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "hello", Image: realnode.BusyboxImage, ImagePullPolicy: corev1.PullNever,
				Command: []string{"sh", "-c", "echo out-line; echo err-line >&2; cat /proc/self/cgroup; sleep 3600"},
			}},
			TerminationGracePeriodSeconds: new(int64),
		},
	}
	client := node.Kube.Client()
	if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	running := waitPodRunning(t, ctx, node, "default", "hello")
	ip, err := netip.ParseAddr(running.Status.PodIP)
	if err != nil || !netip.MustParsePrefix(realnode.PodCIDR).Contains(ip) {
		t.Errorf("pod IP %q is not from the bridge CNI's %s", running.Status.PodIP, realnode.PodCIDR)
	}
	// The kubelet's log layout, as logship reads it.
	logDir := filepath.Join("/var/log/pods", fmt.Sprintf("default_hello_%s", running.UID), "hello")
	waitFor(t, ctx, 30*time.Second, "the container's log", func() (bool, string) {
		b, err := os.ReadFile(filepath.Join(logDir, "0.log"))
		return err == nil && strings.Contains(string(b), " stdout F out-line") && strings.Contains(string(b), " stderr F err-line"), string(b)
	})
	links, _ := filepath.Glob("/var/log/containers/hello_default_hello-*.log")
	if len(links) != 1 {
		t.Errorf("/var/log/containers links for the pod: %v", links)
	}
	// The kubelet's cgroups (cgroup v1, cgroupfs driver), as nodeexp reads them.
	podCgroup := filepath.Join("/sys/fs/cgroup/memory/kubepods/besteffort", "pod"+string(running.UID))
	if _, err := os.Stat(podCgroup); err != nil {
		t.Errorf("the pod's memory cgroup: %v", err)
	}
	// kubectl through the kubelet's API (logs) and the API server.
	if out, err := node.Kubectl(ctx, "logs", "hello"); err != nil || !strings.Contains(out, "out-line") {
		t.Errorf("kubectl logs: %v\n%s", err, out)
	}
	// The node's own traffic leaves through eth0 to the EC2 namespace and
	// nowhere else; the metadata service answers there.
	if out, err := node.Kubectl(ctx, "exec", "hello", "--", "wget", "-q", "-O-", "http://169.254.169.254:80/latest/meta-data/instance-id"); err != nil || !strings.HasPrefix(out, "i-") {
		t.Errorf("a pod without metaproxy reaches the (emulated) metadata service through the node: %v %q", err, out)
	}

	if err := node.Close(); err != nil {
		t.Fatalf("closing the node: %v", err)
	}
	closed = true
	checkHostRestored(t, before)
}

// A node whose test binary died (SIGKILL: no cleanup ran) is removed by the
// next New, which restores the host state the dead run recorded.
func TestRealNodeKilledRunIsCleaned(t *testing.T) {
	sandbox.RequireRoot(t)
	if os.Getenv(realnodeChild) != "" {
		node, err := realnode.New(t.Context(), realnode.Config{})
		if err != nil {
			t.Fatal(err)
		}
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "orphan", Namespace: "default"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "orphan", Image: realnode.BusyboxImage, ImagePullPolicy: corev1.PullNever,
				Command: []string{"sleep", "3600"},
			}}},
		}
		if _, err := node.Kube.Client().CoreV1().Pods("default").Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitPodRunning(t, t.Context(), node, "default", "orphan")
		fmt.Println("NODE-UP")
		time.Sleep(time.Hour)
		return
	}
	before, err := realnode.HostSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.CommandContext(ctx, self, "-test.run", "^TestRealNodeKilledRunIsCleaned$", "-test.v", "-test.timeout", "10m")
	child.Env = append(os.Environ(), realnodeChild+"=1")
	var out demoBuffer
	child.Stdout, child.Stderr = &out, &out
	child.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, 5*time.Minute, "the child's node with a running pod", func() (bool, string) {
		return strings.Contains(out.String(), "NODE-UP"), out.String()
	})
	// Only the test binary dies: its daemons die with it (their death
	// signal), but shims, containers, mounts, cgroups and the kubelet's
	// host changes stay, as after a crash.
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	if realnode.HostClean() == nil {
		t.Fatal("the killed run left nothing behind: the test proves nothing")
	}
	node, err := realnode.New(ctx, realnode.Config{})
	if err != nil {
		t.Fatalf("a new node after a killed run: %v", err)
	}
	if err := node.Close(); err != nil {
		t.Fatal(err)
	}
	checkHostRestored(t, before)
}

func checkHostRestored(t *testing.T, before string) {
	t.Helper()
	if err := realnode.HostClean(); err != nil {
		t.Errorf("the host is not clean after the node: %v", err)
	}
	after, err := realnode.HostSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("host state changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func waitPodRunning(t *testing.T, ctx context.Context, node *realnode.Node, ns, name string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	waitFor(t, ctx, 2*time.Minute, "pod "+ns+"/"+name+" Running", func() (bool, string) {
		p, err := node.Kube.Client().CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		pod = p
		return p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "", fmt.Sprintf("%s %+v", p.Status.Phase, p.Status.ContainerStatuses)
	})
	return pod
}

// waitFor polls cond until it holds or timeout passes, then fails the test
// with cond's last word.
func waitFor(t *testing.T, ctx context.Context, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("waiting for %s (%v): last: %s", what, timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestDemoRealNode runs `make demo-realnode`'s story once: nodekit installed
// on the real node as README.md says, credentials, shipped logs and metrics
// shown, everything removed.
func TestDemoRealNode(t *testing.T) {
	sandbox.RequireRoot(t)
	if os.Getenv("NODEKIT_IMAGE") == "" {
		t.Fatal("NODEKIT_IMAGE is not set: run `make e2e`, which builds the image the demo installs")
	}
	before, err := realnode.HostSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	demo, binDir := demoBinaries(t)
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	r := demoStart(t, demo, binDir, "DEMO_ONESHOT=1", "DEMO_REAL_NODE=1")
	code := r.wait(t, ctx)
	out := r.output()
	t.Logf("demo output:\n%s", out)
	if code != 0 {
		t.Errorf("the real-node demo exited %d, want 0", code)
	}
	for _, want := range []string{
		"kubectl apply --server-side -k my-cluster/",
		"of arn:aws:iam::123456789012:role/shop-web",
		`"log":"order `,
		`nodeexp_pod_memory_working_set_bytes{namespace="shop"`,
		"every step worked and everything it started was removed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	checkHostRestored(t, before)
}
