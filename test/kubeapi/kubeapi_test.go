package kubeapi

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestServerOnLoopback runs the real API server on loopback, plays the
// kubelet through the helpers, and checks Close removes the processes and
// the directory.
func TestServerOnLoopback(t *testing.T) {
	if _, err := EtcdPath(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	srv, err := Start(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := srv.Client()

	pod, err := CreatePod(ctx, c, PodSpec{Namespace: "team-a", Name: "web", Node: "node-1",
		Annotations: map[string]string{"iam.amazonaws.com/role": "web"}})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Spec.NodeName != "node-1" || pod.Status.Phase != corev1.PodPending {
		t.Fatalf("created pod on %q in phase %q, want node-1, Pending", pod.Spec.NodeName, pod.Status.Phase)
	}

	pod, err = SetPodRunning(ctx, c, "team-a", "web", "10.1.0.5", "fd00::5")
	if err != nil {
		t.Fatal(err)
	}
	if pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP != "10.1.0.5" || len(pod.Status.PodIPs) != 2 {
		t.Fatalf("status after SetPodRunning = %+v", pod.Status)
	}
	if got := pod.Status.ContainerStatuses[0].ContainerID; got != ContainerID(pod, "app") {
		t.Fatalf("container ID %q, want %q", got, ContainerID(pod, "app"))
	}

	// The kubeconfig works for kubectl, as a user would run it.
	out, err := exec.CommandContext(ctx, srv.Kubectl(), "--kubeconfig", srv.Kubeconfig(), "get", "pods", "-n", "team-a", "-o", "name").CombinedOutput()
	if err != nil || string(out) != "pod/web\n" {
		t.Fatalf("kubectl get pods = %q, %v", out, err)
	}
	// Authentication is on: an unknown token is refused.
	if _, err := srv.WriteKubeconfig(srv.Dir()+"/nobody.kubeconfig", "nobody", "not-a-token"); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, srv.Kubectl(), "--kubeconfig", srv.Dir()+"/nobody.kubeconfig", "get", "pods").CombinedOutput(); err == nil {
		t.Fatalf("kubectl with an unknown token succeeded: %s", out)
	}

	if err := DeletePod(ctx, c, "team-a", "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Pods("team-a").Get(ctx, "web", metav1.GetOptions{}); err == nil {
		t.Fatal("pod still exists after DeletePod")
	}

	dir := srv.Dir()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s remains after Close (stat: %v)", dir, err)
	}
	if out, err := exec.Command("pgrep", "-f", dir).Output(); err == nil {
		t.Fatalf("processes remain after Close: %s", out)
	}
}

func TestRemoveStaleDirs(t *testing.T) {
	// A child that exits gives a PID that is certainly dead.
	child := exec.Command("true")
	if err := child.Run(); err != nil {
		t.Fatal(err)
	}
	dead := child.Process.Pid

	mk := func(owner string) string {
		dir, err := os.MkdirTemp("", dirPrefix)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if owner != "" {
			if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(owner), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	killed := mk(strconv.Itoa(dead))
	live := mk(strconv.Itoa(os.Getpid()))
	starting := mk("")

	if err := removeStaleDirs(); err != nil {
		t.Fatal(err)
	}
	for dir, wantGone := range map[string]bool{killed: true, live: false, starting: false} {
		_, err := os.Stat(dir)
		if gone := os.IsNotExist(err); gone != wantGone {
			t.Errorf("%s: removed = %v, want %v", dir, gone, wantGone)
		}
	}
}
