//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/nodekit/nodekit/test/sandbox"
)

// awsCLI is Debian's AWS CLI v2 (package awscli), which make test installs;
// a CLI v1 earlier on PATH would not have export-credentials.
const awsCLI = "/usr/bin/aws"

var (
	buildOnce sync.Once
	clientBin string
	buildErr  error
)

// goSDKClient builds testdata/awsclient once per test binary.
func goSDKClient(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nodekit-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		clientBin = filepath.Join(dir, "awsclient")
		out, err := exec.Command("go", "build", "-o", clientBin, "./testdata/awsclient").CombinedOutput()
		if err != nil {
			buildErr = &buildError{err: err, out: string(out)}
		}
	})
	if buildErr != nil {
		t.Fatalf("building the Go SDK client: %v", buildErr)
	}
	return clientBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if err := writeFaultReport(); err != nil {
		fmt.Fprintln(os.Stderr, "writing the fault report:", err)
		code = 1
	}
	if clientBin != "" {
		os.RemoveAll(filepath.Dir(clientBin))
	}
	os.Exit(code)
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// podEnv is a clean environment for an application in a pod: no AWS
// settings leak in from the test process, so the SDKs fall through to IMDS.
func podEnv(t *testing.T, extra ...string) []string {
	home := t.TempDir()
	return append([]string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + home,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "no-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "no-credentials"),
		"AWS_REGION=us-east-1",
	}, extra...)
}

// credentials is what both clients print.
type credentials struct {
	AccessKeyID string `json:"AccessKeyId"`
	Region      string `json:"Region"`
}

// runInPod runs a program in the pod and decodes its JSON output.
func runInPod(t *testing.T, ctx context.Context, pod *sandbox.Pod, env []string, name string, args ...string) (credentials, error) {
	t.Helper()
	cmd := pod.Command(ctx, name, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return credentials{}, &buildError{err: err, out: stderr.String()}
	}
	var c credentials
	if err := json.Unmarshal(stdout.Bytes(), &c); err != nil {
		return credentials{}, &buildError{err: err, out: stdout.String()}
	}
	return c, nil
}

// awsCLICredentials asks the AWS CLI in the pod for its credentials.
func awsCLICredentials(t *testing.T, ctx context.Context, pod *sandbox.Pod, extraEnv ...string) (credentials, error) {
	t.Helper()
	return runInPod(t, ctx, pod, podEnv(t, extraEnv...), awsCLI, "configure", "export-credentials", "--format", "process")
}

// goSDKCredentials asks the Go SDK program in the pod for its credentials.
func goSDKCredentials(t *testing.T, ctx context.Context, pod *sandbox.Pod, extraEnv ...string) (credentials, error) {
	t.Helper()
	return runInPod(t, ctx, pod, podEnv(t, extraEnv...), goSDKClient(t))
}
