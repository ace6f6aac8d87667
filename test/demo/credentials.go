package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nodekit/nodekit/test/sandbox"

	"github.com/nodekit/nodekit/test/agentproc"
)

const credsPath = "/latest/meta-data/iam/security-credentials/"

// credentials asks, from each pod, with the AWS CLI and with the Go SDK, and
// names the role each got by looking its access key up in the emulator.
func (d *demo) credentials(ctx context.Context) {
	self, err := os.Executable()
	if err != nil {
		d.fail("locating the demo binary for the Go SDK client", err)
	}
	for _, p := range d.pods {
		if ctx.Err() != nil {
			return
		}
		want := baseRoleARN + p.role
		d.out.Printf("-> %s/%s (annotation iam.amazonaws.com/role: %s)\n", p.namespace, p.name, p.role)
		clients := []struct {
			name string
			cmd  []string
		}{
			{"AWS CLI v2", []string{awsCLI, "configure", "export-credentials", "--format", "process"}},
			{"Go SDK v2", []string{self, sdkCredentialsCmd}},
		}
		for _, c := range clients {
			if c.cmd[0] == "" {
				continue
			}
			got, err := d.runClient(ctx, p, c.cmd)
			step := fmt.Sprintf("%s in %s/%s", c.name, p.namespace, p.name)
			switch {
			case p.wantDenied && err != nil:
				d.out.Detail("%-10s refused, as it must be: %s", c.name, oneLine(err.Error(), 160))
			case p.wantDenied:
				role, _, _ := d.bed.AWS.RoleForAccessKey(got.AccessKeyID)
				d.out.Detail("%-10s got credentials of %s: the namespace restriction did NOT hold", c.name, role)
				d.fail(step, fmt.Errorf("a pod in a restricted namespace got credentials of %s", role))
			case err != nil:
				d.out.Detail("%-10s FAILED: %s", c.name, oneLine(err.Error(), 300))
				d.fail(step, err)
			default:
				role, session, ok := d.bed.AWS.RoleForAccessKey(got.AccessKeyID)
				if !ok || role != want {
					err := fmt.Errorf("access key %s belongs to %q, want %s", got.AccessKeyID, role, want)
					d.out.Detail("%-10s WRONG ROLE: %v", c.name, err)
					d.fail(step, err)
					continue
				}
				d.out.Detail("%-10s role %s (session %s, key %s, expires %s)", c.name, role, session, maskKey(got.AccessKeyID), got.Expiration)
			}
		}
		if p.wantDenied {
			// What the SDKs saw, as a raw request shows it.
			code, body, err := podGet(ctx, p.pod.Net, credsPath+p.role)
			if err != nil {
				d.out.Detail("raw GET %s%s: %v", credsPath, p.role, err)
			} else {
				_ = code
				d.out.Detail("raw GET http://169.254.169.254%s%s -> %s", credsPath, p.role, oneLine(body, 160))
			}
		}
	}
	d.out.Detail("")
	d.out.Detail("STS AssumeRole calls metaproxy made: %d (one per pod role, then served from its cache)", d.countAssumeRole())
	if direct := d.directIMDS(); len(direct) > 0 {
		err := fmt.Errorf("%d requests from pods reached the real metadata service, e.g. %s", len(direct), direct[0])
		d.out.Detail("FAILED: %v", err)
		d.fail("interception", err)
	} else {
		d.out.Detail("no pod request reached the real metadata service: the node's own role never left the node")
	}
}

// directIMDS lists the emulated IMDS requests that came straight from a pod
// IP, bypassing metaproxy.
func (d *demo) directIMDS() []string {
	var out []string
	for _, r := range d.bed.AWS.IMDSRequests() {
		for _, p := range d.pods {
			if p.pod != nil && strings.HasPrefix(r.RemoteAddr, p.pod.Net.IP().String()+":") {
				out = append(out, fmt.Sprintf("%s %s from %s/%s", r.Method, r.Path, p.namespace, p.name))
			}
		}
	}
	return out
}

func (d *demo) countAssumeRole() int {
	n := 0
	for _, c := range d.bed.AWS.STSCalls() {
		if c.ErrorCode == "" {
			n++
		}
	}
	return n
}

// runClient runs an AWS client in the pod with a clean environment (no AWS
// settings from the demo's own, so the SDK's chain ends at IMDS) and decodes
// the credentials it prints.
func (d *demo) runClient(ctx context.Context, p *demoPod, argv []string) (podCredentials, error) {
	home := filepath.Join(d.work, "home-"+p.name)
	if err := os.MkdirAll(home, 0o755); err != nil {
		return podCredentials{}, fmt.Errorf("creating pod home: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	cmd := p.pod.Net.Command(cctx, argv[0], argv[1:]...)
	cmd.Env = podEnv(home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return podCredentials{}, fmt.Errorf("%w: %s", err, agentproc.LastLines(msg, 2))
	}
	var c podCredentials
	if err := json.Unmarshal(stdout.Bytes(), &c); err != nil {
		return podCredentials{}, fmt.Errorf("decoding %q: %w", oneLine(stdout.String(), 200), err)
	}
	if c.AccessKeyID == "" {
		return podCredentials{}, errors.New("no access key in the output")
	}
	return c, nil
}

// podEnv is an application's environment in a pod.
func podEnv(home string) []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + home,
		"AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
	}
}

// podGet does a plain GET of the metadata service from inside a pod.
func podGet(ctx context.Context, ns *sandbox.Pod, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+sandbox.MetadataIP+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := ns.HTTPClient().Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(resp.Status + " " + string(body)), err
}

// maskKey shows enough of an access key to recognise it.
func maskKey(k string) string {
	if len(k) <= 8 {
		return k
	}
	return k[:4] + "…" + k[len(k)-4:]
}

// oneLine flattens s to one line of at most n bytes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
