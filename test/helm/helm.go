// Package helm finds or builds the Helm binary the chart's tests run
// (build.sh: Helm from the Go module proxy, cached outside the repository)
// and runs it with its own empty home, so no user's repositories, plugins or
// registry credentials take part and nothing is fetched.
package helm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// Version is the Helm release the tests build.
const Version = "v4.3.2"

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary returns the path of helm, building it with build.sh on first use.
// $NODEKIT_HELM overrides the lookup. `make test` builds it up front.
func Binary(ctx context.Context) (string, error) {
	binOnce.Do(func() { binPath, binErr = findOrBuild(ctx) })
	return binPath, binErr
}

func findOrBuild(ctx context.Context) (string, error) {
	if p := os.Getenv("NODEKIT_HELM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("NODEKIT_HELM: %w", err)
		}
		return p, nil
	}
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("locating build.sh: no caller information")
	}
	script := filepath.Join(filepath.Dir(self), "build.sh")
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Env = append(os.Environ(), "HELM_VERSION="+Version)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building helm %s with %s: %w\n%s", Version, script, err, tail(stderr.String(), 4000))
	}
	p := strings.TrimSpace(stdout.String())
	if i := strings.LastIndexByte(p, '\n'); i >= 0 {
		p = p[i+1:]
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("helm after %s: %w", script, err)
	}
	return p, nil
}

// Env is the environment helm runs with: PATH, and HOME and Helm's cache,
// config and data directories under home (an empty directory), so that
// nothing of the user's takes part. kubeconfig, when not empty, is the
// cluster helm talks to.
func Env(home, kubeconfig string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"),
	}
	if kubeconfig != "" {
		env = append(env, "KUBECONFIG="+kubeconfig)
	}
	return env
}

// Run runs helm with args and Env(home, ""), returning its standard output;
// a failure's error carries standard error.
func Run(ctx context.Context, home string, args ...string) ([]byte, error) {
	bin, err := Binary(ctx)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = Env(home, "")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.Bytes(), nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
