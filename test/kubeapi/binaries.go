package kubeapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// Version is the Kubernetes release the test bed builds.
const Version = "v1.36.3"

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// Binaries returns the directory holding kube-apiserver, kubectl and the
// real node's binaries (kubelet, kube-controller-manager, kube-scheduler,
// kube-proxy), building them with build.sh on first use. $NODEKIT_KUBE_BIN overrides the lookup.
// The build takes minutes on a fresh machine; `make test` runs it up front so
// tests only find it in the cache.
func Binaries(ctx context.Context) (string, error) {
	binOnce.Do(func() { binDir, binErr = findOrBuild(ctx) })
	return binDir, binErr
}

func findOrBuild(ctx context.Context) (string, error) {
	if dir := os.Getenv("NODEKIT_KUBE_BIN"); dir != "" {
		return checkBinaries(dir)
	}
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("locating build.sh: no caller information")
	}
	script := filepath.Join(filepath.Dir(self), "build.sh")
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Env = append(os.Environ(), "KUBE_VERSION="+Version)
	var stdout, stderr bytes.Buffer
	// Progress reaches the caller's output too: a first build takes about
	// 20 minutes and must not be silent.
	cmd.Stdout, cmd.Stderr = &stdout, io.MultiWriter(os.Stderr, &stderr)
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building kube-apiserver %s with %s: %w\n%s", Version, script, err, tail(stderr.String(), 4000))
	}
	return checkBinaries(strings.TrimSpace(lastLine(stdout.String())))
}

func checkBinaries(dir string) (string, error) {
	for _, name := range []string{"kube-apiserver", "kubectl", "kubelet", "kube-controller-manager", "kube-scheduler", "kube-proxy"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("kube binaries in %s: %w", dir, err)
		}
	}
	return dir, nil
}

// EtcdPath finds Debian's etcd (package etcd-server).
func EtcdPath() (string, error) {
	if p, err := exec.LookPath("etcd"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("etcd not found on PATH: install the Debian package etcd-server (make test does)")
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
