//go:build e2e

package e2e

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nodekit/nodekit/pkg/kube"
	"github.com/nodekit/nodekit/test/kubeapi"
	"github.com/nodekit/nodekit/test/testbed"
)

// TestTestBed proves the wiring every agent relies on: pods in their own
// network namespaces reach the emulated IMDS at 169.254.169.254 with the AWS
// CLI and the Go SDK, the node-scoped informer sees the pods by IP from the
// real API server, and closing the bed leaves nothing behind.
func TestTestBed(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	bed := testbed.Start(t, testbed.Config{})

	web, err := bed.AddPod(ctx, kubeapi.PodSpec{Namespace: "shop", Name: "web", Labels: map[string]string{"app": "web"}})
	if err != nil {
		t.Fatal(err)
	}
	worker, err := bed.AddPod(ctx, kubeapi.PodSpec{Namespace: "batch", Name: "worker"})
	if err != nil {
		t.Fatal(err)
	}
	// A pod on another node must stay out of the node-scoped informer.
	if _, err := kubeapi.CreatePod(ctx, bed.Client(), kubeapi.PodSpec{Namespace: "shop", Name: "elsewhere", Node: "other-node"}); err != nil {
		t.Fatal(err)
	}
	if _, err := kubeapi.SetPodRunning(ctx, bed.Client(), "shop", "elsewhere", "100.96.9.9"); err != nil {
		t.Fatal(err)
	}

	t.Run("informer sees the node's pods by IP", func(t *testing.T) {
		client, err := kube.NewClientForConfig(bed.Kube.RESTConfig())
		if err != nil {
			t.Fatal(err)
		}
		pods, err := kube.NewPods(client, testbed.NodeName, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		ictx, icancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- pods.Run(ictx) }()
		defer func() { icancel(); <-done }()
		if err := pods.WaitForSync(ictx); err != nil {
			t.Fatal(err)
		}
		// Both pods were running before the informer listed them.
		for _, p := range []*testbed.Pod{web, worker} {
			got := pods.ByIP(p.Net.IP().String())
			if len(got) != 1 || got[0].Name != p.API.Name || got[0].UID != p.API.UID {
				t.Errorf("pods with IP %s = %v, want %s", p.Net.IP(), got, p.API.Name)
			}
		}
		if got := pods.ByIP("100.96.9.9"); len(got) != 0 {
			t.Errorf("a pod of another node is in the node-scoped cache: %v", got)
		}
	})

	nodeRole := bed.AWS.NodeRoleArn()
	clients := []struct {
		name string
		pod  *testbed.Pod
		get  func(*testing.T, context.Context, *testbed.Pod) (credentials, error)
	}{
		{"AWS CLI", web, func(t *testing.T, ctx context.Context, p *testbed.Pod) (credentials, error) {
			return awsCLICredentials(t, ctx, p.Net)
		}},
		{"Go SDK", worker, func(t *testing.T, ctx context.Context, p *testbed.Pod) (credentials, error) {
			return goSDKCredentials(t, ctx, p.Net)
		}},
	}
	for _, c := range clients {
		t.Run(c.name+" in a pod reaches IMDS", func(t *testing.T) {
			before := len(bed.AWS.IMDSRequests())
			creds, err := c.get(t, ctx, c.pod)
			if err != nil {
				t.Fatalf("%s in pod %s: %v", c.name, c.pod.API.Name, err)
			}
			if role, _, ok := bed.AWS.RoleForAccessKey(creds.AccessKeyID); !ok || role != nodeRole {
				t.Fatalf("%s got access key %q of role %q (known: %v); want the emulated node role %s", c.name, creds.AccessKeyID, role, ok, nodeRole)
			}
			reqs := bed.AWS.IMDSRequests()[before:]
			var fromPod bool
			for _, r := range reqs {
				if strings.HasPrefix(r.RemoteAddr, c.pod.Net.IP().String()+":") {
					fromPod = true
				}
			}
			if !fromPod {
				t.Fatalf("no IMDS request came from the pod's IP %s: %+v", c.pod.Net.IP(), reqs)
			}
		})
	}

	t.Run("closing leaves nothing behind", func(t *testing.T) {
		id, kubeDir, sbDir := bed.Sandbox.ID(), bed.Kube.Dir(), bed.Sandbox.Dir()
		if err := bed.Close(); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("ip", "netns", "list").Output()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), id) {
			t.Errorf("namespaces of sandbox %s remain:\n%s", id, out)
		}
		for _, dir := range []string{kubeDir, sbDir} {
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("directory %s remains (stat: %v)", dir, err)
			}
		}
		if out, err := exec.Command("pgrep", "-f", kubeDir).Output(); err == nil {
			t.Errorf("processes of the API server remain: %s", out)
		}
	})
}
