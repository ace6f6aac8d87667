package realnode

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/nodekit/nodekit/test/kubeapi"
)

// ContainerdVersion is the containerd release the node runs.
const ContainerdVersion = "v2.4.2"

// debianTools are the node's parts that come from Debian packages (make test
// installs them): runc, the CNI plugins, busybox for the test pods' image,
// nsenter (util-linux), ip (iproute2), iptables and conntrack for kube-proxy.
var debianTools = map[string]string{
	"/usr/sbin/runc":       "runc",
	"/usr/lib/cni/bridge":  "containernetworking-plugins",
	"/usr/lib/cni/portmap": "containernetworking-plugins",
	"/bin/busybox":         "busybox-static",
	"/usr/bin/nsenter":     "util-linux",
	"/usr/sbin/iptables":   "iptables",
	"/usr/sbin/conntrack":  "conntrack",
}

// binaries are the paths of everything the node runs.
type binaries struct {
	kube       string // kube-apiserver, kubectl, kubelet, kube-controller-manager, kube-scheduler, kube-proxy
	containerd string // containerd, containerd-shim-runc-v2, ctr
}

func (b binaries) kubelet() string           { return filepath.Join(b.kube, "kubelet") }
func (b binaries) kubectl() string           { return filepath.Join(b.kube, "kubectl") }
func (b binaries) controllerManager() string { return filepath.Join(b.kube, "kube-controller-manager") }
func (b binaries) scheduler() string         { return filepath.Join(b.kube, "kube-scheduler") }
func (b binaries) proxy() string             { return filepath.Join(b.kube, "kube-proxy") }
func (b binaries) containerdd() string       { return filepath.Join(b.containerd, "containerd") }
func (b binaries) ctr() string               { return filepath.Join(b.containerd, "ctr") }
func (b binaries) shim() string              { return filepath.Join(b.containerd, "containerd-shim-runc-v2") }

// findBinaries finds or builds the node's binaries. The Kubernetes and
// containerd builds are cached outside the repository ($NODEKIT_CACHE); a
// fresh machine spends about 20 minutes on them, printing progress to
// progress (nil: discarded). $NODEKIT_KUBE_BIN and $NODEKIT_CONTAINERD_BIN
// name ready directories instead.
func findBinaries(ctx context.Context) (binaries, error) {
	var b binaries
	for path, pkg := range debianTools {
		if _, err := os.Stat(path); err != nil {
			return b, fmt.Errorf("%s is missing: install the Debian package %s (make test does)", path, pkg)
		}
	}
	var err error
	if b.kube, err = kubeapi.Binaries(ctx); err != nil {
		return b, err
	}
	if b.containerd, err = containerdBinaries(ctx); err != nil {
		return b, err
	}
	return b, nil
}

func containerdBinaries(ctx context.Context) (string, error) {
	if dir := os.Getenv("NODEKIT_CONTAINERD_BIN"); dir != "" {
		return dir, nil
	}
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("locating build-containerd.sh: no caller information")
	}
	script := filepath.Join(filepath.Dir(self), "build-containerd.sh")
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Env = append(os.Environ(), "CONTAINERD_VERSION="+ContainerdVersion)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	// The build's progress goes where the test's output goes: a first run
	// must never be minutes of silence.
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building containerd %s with %s: %w", ContainerdVersion, script, err)
	}
	dir := strings.TrimSpace(stdout.String())
	if i := strings.LastIndexByte(dir, '\n'); i >= 0 {
		dir = dir[i+1:]
	}
	return dir, nil
}

// buildPause builds the pod sandbox's pause program into dir.
func buildPause(ctx context.Context, dir string) (string, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("locating the pause program: no caller information")
	}
	out := filepath.Join(dir, "pause")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, ".")
	cmd.Dir = filepath.Join(filepath.Dir(self), "pause")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building pause: %w: %s", err, b)
	}
	return out, nil
}
