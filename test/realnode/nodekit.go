package realnode

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Nodekit's DaemonSet as deploy/nodekit.yaml names it.
const (
	NodekitNamespace = "nodekit"
	NodekitDaemonSet = "nodekit"
	// UserOverlay is the directory README.md's install steps put the
	// cluster's kustomization in, beside the repository's deploy/.
	UserOverlay = "my-cluster"
)

// Agent ports on the node IP, as the manifest binds them.
const (
	MetaproxyOpsPort = 9181
	LogshipOpsPort   = 9182
	NodeexpPort      = 9100
)

// InstallConfig is how nodekit is installed on the node: the way README.md's
// "Install from a local image" does it (ParseInstall reads it from there).
type InstallConfig struct {
	// Steps are README.md's.
	Steps Install
	// ImageArchive is what `make image` wrote (Steps.Archive, found by the
	// caller); it must hold Steps.ImageRef.
	ImageArchive string
	// DeployDir is the repository's deploy/ (the manifest and its
	// kustomization).
	DeployDir string
}

// Nodekit is nodekit installed on the node.
type Nodekit struct {
	node *Node
	dir  string // the overlays
}

// InstallNodekit runs README.md's steps on the node: it imports the image
// into containerd, applies the user's kustomization with kubectl and waits
// for the DaemonSet's rollout. The only layer added to the user's is the
// test bed's: the AWS endpoints of the emulator (AWS_ENDPOINT_URL_STS and
// AWS_ENDPOINT_URL_CLOUDWATCH_LOGS), as a cluster with private endpoints
// would set them; the apply command's -k names that layer instead.
func (n *Node) InstallNodekit(ctx context.Context, cfg InstallConfig) (*Nodekit, error) {
	if err := n.ImportArchive(ctx, cfg.ImageArchive); err != nil {
		return nil, err
	}
	if out, err := n.Ctr(ctx, "images", "ls", "-q"); err != nil || !strings.Contains(out, cfg.Steps.ImageRef+"\n") {
		return nil, fmt.Errorf("%s does not hold %s (images: %s, %v)", cfg.ImageArchive, cfg.Steps.ImageRef, out, err)
	}
	dir, err := os.MkdirTemp(n.dir, "install-")
	if err != nil {
		return nil, err
	}
	k := &Nodekit{node: n, dir: dir}
	if err := os.Symlink(cfg.DeployDir, filepath.Join(dir, "deploy")); err != nil {
		return nil, err
	}
	for name, content := range map[string]string{
		filepath.Join(UserOverlay, "kustomization.yaml"): cfg.Steps.Kustomization,
		filepath.Join("testbed", "kustomization.yaml"):   n.testbedKustomization(),
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	apply := append([]string(nil), cfg.Steps.Apply...)
	replaced := false
	for i, a := range apply {
		if strings.TrimSuffix(a, "/") == UserOverlay && i > 0 && apply[i-1] == "-k" {
			apply[i], replaced = filepath.Join(dir, "testbed"), true
		}
	}
	if !replaced {
		return nil, fmt.Errorf("the apply step %q does not apply -k %s/", cfg.Steps.Apply, UserOverlay)
	}
	if _, err := n.Kubectl(ctx, apply...); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if _, err := n.Kubectl(rctx, cfg.Steps.Rollout...); err != nil {
		return nil, err
	}
	return k, nil
}

// testbedKustomization points the agents at the emulator.
func (n *Node) testbedKustomization() string {
	var b strings.Builder
	b.WriteString("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../" + UserOverlay + "\npatches:\n")
	b.WriteString("  - target: {kind: DaemonSet, name: " + NodekitDaemonSet + "}\n    patch: |-\n")
	for i := range 3 {
		for _, env := range [][2]string{{"AWS_ENDPOINT_URL_STS", n.STSEndpoint()}, {"AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", n.LogsEndpoint()}} {
			fmt.Fprintf(&b, "      - {op: add, path: /spec/template/spec/containers/%d/env/-, value: {name: %s, value: %q}}\n", i, env[0], env[1])
		}
	}
	return b.String()
}

// Dir is where the overlays are: deploy (a link to the repository's),
// my-cluster (the user's) and testbed (the emulator's endpoints), for
// kubectl -k.
func (k *Nodekit) Dir() string { return k.dir }

// WaitRollout waits for the DaemonSet's rollout to finish, as `kubectl
// rollout status` sees it.
func (k *Nodekit) WaitRollout(ctx context.Context) error {
	_, err := k.node.Kubectl(ctx, "-n", NodekitNamespace, "rollout", "status", "daemonset/"+NodekitDaemonSet, "--timeout=3m")
	return err
}

// Pod is the DaemonSet's pod on the node: the one not being deleted.
func (k *Nodekit) Pod(ctx context.Context) (*corev1.Pod, error) {
	pods, err := k.node.Kube.Client().CoreV1().Pods(NodekitNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=nodekit"})
	if err != nil {
		return nil, fmt.Errorf("listing nodekit pods: %w", err)
	}
	for i := range pods.Items {
		if pods.Items[i].DeletionTimestamp == nil {
			return &pods.Items[i], nil
		}
	}
	return nil, fmt.Errorf("no nodekit pod on the node")
}

// Get fetches path from an agent's port on the node IP, as Prometheus
// does: from inside the node namespace.
func (k *Nodekit) Get(ctx context.Context, port int, path string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	url := "http://" + net.JoinHostPort(NodeIP.String(), fmt.Sprint(port)) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := k.node.NodeNS.HTTPClient().Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// Uninstall deletes what the kustomization applied (`kubectl delete -k`)
// and waits for the pod to go.
func (k *Nodekit) Uninstall(ctx context.Context) error {
	if _, err := k.node.Kubectl(ctx, "delete", "-k", filepath.Join(k.dir, "testbed"), "--wait=true", "--timeout=2m"); err != nil {
		return err
	}
	return k.node.waitFor(ctx, "the nodekit pods to go", 2*time.Minute, func(ctx context.Context) (bool, error) {
		pods, err := k.node.Kube.Client().CoreV1().Pods(NodekitNamespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		return len(pods.Items) == 0, nil
	})
}
