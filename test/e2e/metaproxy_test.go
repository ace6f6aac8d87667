//go:build e2e

package e2e

// End-to-end test of metaproxy (issue 3): metaproxy runs as a process in a
// sandbox node namespace with --iptables, next to a real kube-apiserver and
// the AWS emulator (STS on the node IP, IMDS on 169.254.169.254); pods are
// network namespaces whose clients (AWS CLI v2, botocore, a Go SDK v2
// program and raw HTTP) believe they talk to the instance metadata service.
// Which role each client got is checked against the emulator's AssumeRole
// records. Needs root (CI runs as root).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-iptables/iptables"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodekit/nodekit/test/awsemu"
	"github.com/nodekit/nodekit/test/kubeapi"
	"github.com/nodekit/nodekit/test/sandbox"
	"github.com/nodekit/nodekit/test/testbed"
)

const (
	mpNode     = testbed.NodeName
	mpAccount  = awsemu.DefaultAccountID
	mpBaseARN  = "arn:aws:iam::" + mpAccount + ":role/"
	mpMetaURL  = "http://" + sandbox.MetadataIP
	mpCredsDir = "/latest/meta-data/iam/security-credentials/"
)

// mpBed is the running test bed.
type mpBed struct {
	t       testing.TB
	sb      *sandbox.Sandbox
	emu     *awsemu.Emulator
	api     *kubeapi.Server
	client  kubernetes.Interface
	bin     string
	sdkBin  string
	awsEnv  []string
	proc    *exec.Cmd
	procErr chan error
	logs    *output
}

func mpBuild(t testing.TB, dir, pkg, name string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = mpRepoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, b)
	}
	return out
}

func mpRepoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(wd, "..", "..")
}

func mpServe(t testing.TB, ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
}

func mpStartBed(t testing.TB) *mpBed {
	sandbox.RequireRoot(t)
	b := &mpBed{t: t, logs: &output{}}
	b.bin = mpBinary(t)
	b.sdkBin = mpBuild(t, t.TempDir(), "./test/e2e/testdata/mpgosdk", "mpgosdk")
	bed := testbed.Start(t, testbed.Config{})
	b.sb, b.emu, b.api, b.client, b.awsEnv = bed.Sandbox, bed.AWS, bed.Kube, bed.Client(), bed.AWSEnv()
	for range 6 {
		sandbox.AddPod(t, b.sb)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("metaproxy output:\n%s", b.logs.String())
		}
	})
	return b
}

// mpBinary is make build's bin/metaproxy when $NODEKIT_BIN names it, else a
// fresh build.
func mpBinary(t testing.TB) string {
	if dir := os.Getenv("NODEKIT_BIN"); dir != "" {
		bin := filepath.Join(dir, "metaproxy")
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("NODEKIT_BIN=%s: %v", dir, err)
		}
		return bin
	}
	return mpBuild(t, t.TempDir(), "./cmd/metaproxy", "metaproxy")
}

// start runs metaproxy in the node namespace and waits for /readyz.
func (b *mpBed) start(extra ...string) {
	t := b.t
	node := b.sb.Node()
	args := append([]string{
		"--kubeconfig", b.api.Kubeconfig(), "--node-name", mpNode, "--log-format", "text", "--log-level", "debug",
		"--iptables", "--host-interface", "cali+", "--host-ip", node.IP().String(),
		"--base-role-arn", mpBaseARN, "--default-role", "default-role", "--namespace-restrictions",
	}, extra...)
	cmd := node.Command(context.WithoutCancel(t.Context()), b.bin, args...)
	// Like on an EC2 node, metaproxy's own credentials are the node role's,
	// from the (emulated) metadata service it reaches directly.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + b.sb.Dir()}, b.awsEnv...)
	cmd.Stdout, cmd.Stderr = b.logs, b.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting metaproxy: %v", err)
	}
	b.proc, b.procErr = cmd, make(chan error, 1)
	go func() { b.procErr <- cmd.Wait() }()
	t.Cleanup(func() { b.stop() })

	hc := node.HTTPClient()
	deadline := time.Now().Add(60 * time.Second)
	for {
		// A bounded poll on an external condition: the process becoming ready.
		resp, err := hc.Get("http://127.0.0.1:9181/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("metaproxy not ready: %s", body)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("metaproxy not ready: %v", err)
		}
		select {
		case err := <-b.procErr:
			t.Fatalf("metaproxy exited: %v\n%s", err, b.logs.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM and waits for metaproxy to exit.
func (b *mpBed) stop() {
	if b.proc == nil {
		return
	}
	_ = b.proc.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.procErr:
	case <-time.After(15 * time.Second):
		_ = b.proc.Process.Kill()
		<-b.procErr
	}
	b.proc = nil
}

// namespace creates a namespace and its default service account (no
// controller-manager runs to make it, and pod admission wants it).
func (b *mpBed) namespace(name string, annotations map[string]string) {
	b.t.Helper()
	ctx := b.t.Context()
	if _, err := kubeapi.EnsureNamespace(ctx, b.client, name, annotations); err != nil {
		b.t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: "default"}}
	if _, err := b.client.CoreV1().ServiceAccounts(name).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		b.t.Fatal(err)
	}
}

// pod creates an API pod on the sandbox pod's IP, annotated with role.
func (b *mpBed) pod(p *sandbox.Pod, ns, name string, annotations map[string]string) *corev1.Pod {
	b.t.Helper()
	ctx := b.t.Context()
	if _, err := kubeapi.CreatePod(ctx, b.client, kubeapi.PodSpec{Namespace: ns, Name: name, Node: mpNode, Annotations: annotations}); err != nil {
		b.t.Fatalf("creating pod %s/%s: %v", ns, name, err)
	}
	pod, err := kubeapi.SetPodRunning(ctx, b.client, ns, name, p.IP().String())
	if err != nil {
		b.t.Fatalf("reporting pod %s/%s running: %v", ns, name, err)
	}
	return pod
}

// get does a raw IMDS request from inside pod p.
func mpDo(t testing.TB, p *sandbox.Pod, method, path string, header map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, mpMetaURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(path, "%") || strings.Contains(path, "/./") || strings.Contains(path, "/../") || strings.Contains(path, "//") {
		req.URL.Opaque = "//" + sandbox.MetadataIP + path // send the spelling as is
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := p.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s from %s: %v", method, path, p.Name(), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

// roleOf maps an access key to the role the emulator issued it for.
func (b *mpBed) roleOf(accessKey string) string {
	role, _, ok := b.emu.RoleForAccessKey(strings.TrimSpace(accessKey))
	if !ok {
		return "unknown key " + accessKey
	}
	return role
}

func mpPodEnv(b *mpBed, extra ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + b.sb.Dir(), "AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"}, extra...)
}

func mpRun(t testing.TB, cmd *exec.Cmd) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\nstdout: %s\nstderr: %s", strings.Join(cmd.Args, " "), err, out, stderr.String())
	}
	return string(out)
}

func mpBotocorePython(t testing.TB) string {
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if err := exec.Command(py, "-c", "import botocore").Run(); err == nil {
			return py
		}
	}
	t.Fatal("no python3 with botocore (install python3-botocore)")
	return ""
}

func mpMetric(t testing.TB, b *mpBed, name string) float64 {
	t.Helper()
	resp, err := b.sb.Node().HTTPClient().Get("http://127.0.0.1:9181/metrics")
	if err != nil {
		t.Fatalf("scraping metaproxy: %v", err)
	}
	defer resp.Body.Close()
	var total float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			var v float64
			fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v)
			total += v
		}
	}
	return total
}

func TestMetaproxyEndToEnd(t *testing.T) {
	b := mpStartBed(t)
	ctx := t.Context()
	pods := b.sb.Pods()
	b.namespace("team", map[string]string{"iam.amazonaws.com/allowed-roles": `["app-*"]`})
	b.namespace("locked", nil)
	b.pod(pods[0], "team", "cli", map[string]string{"iam.amazonaws.com/role": "app-cli"})
	b.pod(pods[1], "team", "boto", map[string]string{"iam.amazonaws.com/role": "app-boto"})
	b.pod(pods[2], "team", "gosdk", map[string]string{"iam.amazonaws.com/role": "app-go", "iam.amazonaws.com/external-id": "ext-123"})
	b.pod(pods[3], "team", "plain", nil)
	b.pod(pods[4], "locked", "sneaky", map[string]string{"iam.amazonaws.com/role": "app-cli"})
	b.emu.RequireExternalID(mpBaseARN+"app-go", "ext-123")
	b.start()

	t.Run("aws cli v2 gets its pod's role", func(t *testing.T) {
		cmd := pods[0].Command(ctx, "/usr/bin/aws", "configure", "export-credentials", "--format", "process")
		cmd.Env = mpPodEnv(b)
		var out struct{ AccessKeyId string }
		if err := json.Unmarshal([]byte(mpRun(t, cmd)), &out); err != nil {
			t.Fatal(err)
		}
		if got := b.roleOf(out.AccessKeyId); got != mpBaseARN+"app-cli" {
			t.Fatalf("AWS CLI got %s", got)
		}
	})
	t.Run("botocore with IMDSv1 disabled gets its pod's role", func(t *testing.T) {
		cmd := pods[1].Command(ctx, mpBotocorePython(t), "-c", "import botocore.session; print(botocore.session.get_session().get_credentials().access_key)")
		cmd.Env = mpPodEnv(b, "AWS_EC2_METADATA_V1_DISABLED=true")
		if got := b.roleOf(mpRun(t, cmd)); got != mpBaseARN+"app-boto" {
			t.Fatalf("botocore got %s", got)
		}
	})
	t.Run("go sdk v2 gets its pod's role with the external id", func(t *testing.T) {
		cmd := pods[2].Command(ctx, b.sdkBin)
		cmd.Env = mpPodEnv(b)
		if got := b.roleOf(mpRun(t, cmd)); got != mpBaseARN+"app-go" {
			t.Fatalf("Go SDK got %s", got)
		}
		found := false
		for _, c := range b.emu.STSCalls() {
			if c.RoleArn == mpBaseARN+"app-go" && c.ErrorCode == "" {
				signer, _, _ := b.emu.RoleForAccessKey(c.CallerAccessKeyID)
				found = c.ExternalID == "ext-123" && c.RoleSessionName == "team.gosdk" && signer == b.emu.NodeRoleArn()
			}
		}
		if !found {
			t.Fatalf("no AssumeRole of app-go with external ID ext-123 and session team.gosdk signed by the node role: %+v", b.emu.STSCalls())
		}
	})
	t.Run("pod without annotation gets the default role", func(t *testing.T) {
		code, body, _ := mpDo(t, pods[3], "GET", mpCredsDir, nil)
		if code != 200 || body != "default-role" {
			t.Fatalf("listing = %d %q", code, body)
		}
		code, body, _ = mpDo(t, pods[3], "GET", mpCredsDir+"default-role", nil)
		var doc struct{ AccessKeyId string }
		_ = json.Unmarshal([]byte(body), &doc)
		if code != 200 || b.roleOf(doc.AccessKeyId) != mpBaseARN+"default-role" {
			t.Fatalf("credentials = %d %q", code, body)
		}
	})
	t.Run("restricted namespace refused", func(t *testing.T) {
		if code, _, _ := mpDo(t, pods[4], "GET", mpCredsDir+"app-cli", nil); code != 403 {
			t.Fatalf("credentials in a namespace without allowed-roles = %d, want 403", code)
		}
	})
	t.Run("imdsv2 token rules", func(t *testing.T) {
		code, tok, h := mpDo(t, pods[0], "PUT", "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"})
		if code != 200 || h.Get("X-aws-ec2-metadata-token-ttl-seconds") != "60" {
			t.Fatalf("token PUT = %d", code)
		}
		for _, tt := range []struct {
			name   string
			pod    *sandbox.Pod
			method string
			header map[string]string
			want   int
		}{
			{"own token", pods[0], "GET", map[string]string{"X-aws-ec2-metadata-token": tok}, 200},
			{"another pod's token", pods[1], "GET", map[string]string{"X-aws-ec2-metadata-token": tok}, 401},
			{"garbage token", pods[0], "GET", map[string]string{"X-aws-ec2-metadata-token": "garbage"}, 401},
			{"missing TTL", pods[0], "PUT", nil, 400},
			{"TTL too long", pods[0], "PUT", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "21601"}, 400},
			{"X-Forwarded-For", pods[0], "PUT", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60", "X-Forwarded-For": "10.0.0.1"}, 403},
		} {
			path := mpCredsDir
			if tt.method == "PUT" {
				path = "/latest/api/token"
			}
			if code, _, _ := mpDo(t, tt.pod, tt.method, path, tt.header); code != tt.want {
				t.Errorf("%s: %d, want %d", tt.name, code, tt.want)
			}
		}
	})
	t.Run("sensitive paths refused, region and identity document pass", func(t *testing.T) {
		nodeRole := awsemu.DefaultNodeRole
		for _, p := range []string{
			"/latest/user-data", "/latest/user-data/", "/latest//user-data", "/latest/meta-data/../user-data",
			"/latest/%75ser-data", "/LATEST/USER-DATA", "/2009-04-04/user-data",
			mpCredsDir + nodeRole, "/latest/meta-data/iam/security-credentials/%6eodekit-node",
			"/latest/meta-data//iam/security-credentials/" + nodeRole, "/latest/meta-data/placement/../iam/security-credentials/" + nodeRole,
			"/2016-09-02/meta-data/iam/security-credentials/" + nodeRole, "/latest/meta-data/IAM/security-credentials/" + nodeRole,
			"/latest/meta-data/iam/security-credentials-extended/" + nodeRole,
			"/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance",
			"/latest/meta-data/%252e%252e/user-data",
			// The ops endpoints live on --metrics-addr only.
			"/metrics", "/healthz", "/readyz", "/debug/pprof/",
		} {
			code, body, _ := mpDo(t, pods[0], "GET", p, nil)
			if code == 200 || strings.Contains(body, "AccessKeyId") {
				t.Errorf("GET %s = %d %q", p, code, body)
			}
		}
		if code, body, _ := mpDo(t, pods[0], "GET", "/latest/meta-data/placement/region", nil); code != 200 || body != b.emu.Region() {
			t.Errorf("region = %d %q", code, body)
		}
		if code, body, _ := mpDo(t, pods[0], "GET", "/latest/dynamic/instance-identity/document", nil); code != 200 || !strings.Contains(body, "instanceId") {
			t.Errorf("identity document = %d %q", code, body)
		}
		if code, body, _ := mpDo(t, pods[0], "GET", "/latest/meta-data/iam/info", nil); code != 200 || strings.Contains(body, nodeRole) || !strings.Contains(body, "app-cli") {
			t.Errorf("iam/info = %d %q", code, body)
		}
		for _, r := range b.emu.IMDSRequests() {
			if strings.Contains(r.UserAgent, "aws-sdk-go-v2/") {
				continue // metaproxy's own SDK fetching the node's credentials, as it should
			}
			lower := strings.ToLower(r.Path)
			if strings.Contains(lower, "/iam/") || strings.Contains(lower, "user-data") || strings.Contains(lower, "identity-credentials") {
				t.Errorf("%s reached the real metadata service", r.Path)
			}
			if r.XForwardedFor != "" {
				t.Errorf("metaproxy sent X-Forwarded-For %q upstream", r.XForwardedFor)
			}
		}
	})
	t.Run("IP reused by a pod with another role", func(t *testing.T) {
		if err := kubeapi.DeletePod(ctx, b.client, "team", "plain"); err != nil {
			t.Fatal(err)
		}
		b.pod(pods[3], "team", "reuser", map[string]string{"iam.amazonaws.com/role": "app-reuse"})
		start := time.Now()
		code, body, _ := mpDo(t, pods[3], "GET", mpCredsDir, nil)
		if code != 200 || body != "app-reuse" {
			// The informer may trail the API server by a moment; one more
			// request (as an SDK retry would) must see the new pod.
			code, body, _ = mpDo(t, pods[3], "GET", mpCredsDir, nil)
		}
		if code != 200 || body != "app-reuse" {
			t.Fatalf("after IP reuse listing = %d %q", code, body)
		}
		t.Logf("new role after %v", time.Since(start))

		// Two claims at once: the old pod terminating (graceful delete, no
		// kubelet to finish it), the new one running. The new one wins and
		// the choice is logged with both UIDs.
		old, err := b.client.CoreV1().Pods("team").Get(ctx, "reuser", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		grace := int64(300)
		if err := b.client.CoreV1().Pods("team").Delete(ctx, "reuser", metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
			t.Fatal(err)
		}
		newer := b.pod(pods[3], "team", "reuser2", map[string]string{"iam.amazonaws.com/role": "app-reuse2"})
		code, body, _ = mpDo(t, pods[3], "GET", mpCredsDir, nil)
		if code != 200 || body != "app-reuse2" {
			code, body, _ = mpDo(t, pods[3], "GET", mpCredsDir, nil) // as an SDK retry would
		}
		if code != 200 || body != "app-reuse2" {
			t.Fatalf("with a terminating and a running pod on one IP: %d %q", code, body)
		}
		logCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if !b.logs.waitFor(logCtx, string(old.UID), string(newer.UID), "several pods claim one IP") {
			t.Errorf("the choice between %s and %s is not logged", old.UID, newer.UID)
		}
	})
	t.Run("STS throttled: cached credentials served, backoff visible", func(t *testing.T) {
		b.emu.SetFault("AssumeRole", awsemu.Fault{ThrottleEvery: 1})
		defer b.emu.ClearFaults()
		if code, _, _ := mpDo(t, pods[0], "GET", mpCredsDir+"app-cli", nil); code != 200 {
			t.Fatalf("cached credentials while STS throttles = %d", code)
		}
		b.pod(pods[5], "team", "newcomer", map[string]string{"iam.amazonaws.com/role": "app-new"})
		code, _, _ := mpDo(t, pods[5], "GET", mpCredsDir+"app-new", nil)
		if code == 200 {
			t.Fatal("credentials for a new role while STS throttles everything")
		}
		if v := mpMetric(t, b, "metaproxy_sts_backoff_total"); v < 1 {
			t.Fatalf("metaproxy_sts_backoff_total = %v", v)
		}
	})
	t.Run("API server stopped: cached credentials still served", func(t *testing.T) {
		if err := b.api.Stop(); err != nil {
			t.Fatal(err)
		}
		code, body, _ := mpDo(t, pods[0], "GET", mpCredsDir+"app-cli", nil)
		var doc struct{ AccessKeyId string }
		_ = json.Unmarshal([]byte(body), &doc)
		if code != 200 || b.roleOf(doc.AccessKeyId) != mpBaseARN+"app-cli" {
			t.Fatalf("with the API server down = %d %q", code, body)
		}
	})
	t.Run("SIGTERM keeps pods off the node's identity; uninstall removes the rule", func(t *testing.T) {
		var rule6 []string
		if err := b.sb.Node().Do(func() error {
			ip6, err := iptables.NewWithProtocol(iptables.ProtocolIPv6)
			if err != nil {
				return err
			}
			rule6, err = ip6.List("filter", "NODEKIT-METAPROXY")
			return err
		}); err != nil || len(rule6) != 2 || !strings.Contains(rule6[1], "fd00:ec2::254") {
			t.Errorf("IPv6 metadata reject rule: %q, %v", rule6, err)
		}
		before := len(b.emu.IMDSRequests())
		b.stop()
		req, _ := http.NewRequestWithContext(ctx, "GET", mpMetaURL+mpCredsDir, nil)
		if resp, err := pods[0].HTTPClient().Do(req); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Fatalf("after SIGTERM a pod got %d %q, want a refused connection", resp.StatusCode, body)
		}
		for _, r := range b.emu.IMDSRequests()[before:] {
			if strings.HasPrefix(r.RemoteAddr, pods[0].IP().String()+":") {
				t.Fatalf("a pod reached the real metadata service after SIGTERM: %+v", r)
			}
		}
		out, err := b.sb.Node().Command(ctx, b.bin, "uninstall", "--host-interface", "cali+").CombinedOutput()
		if err != nil {
			t.Fatalf("metaproxy uninstall: %v\n%s", err, out)
		}
		var rules []string
		if err := b.sb.Node().Do(func() error {
			ipt, err := iptables.New()
			if err != nil {
				return err
			}
			for _, chain := range []string{"PREROUTING", "OUTPUT", "POSTROUTING"} {
				rs, err := ipt.List("nat", chain)
				if err != nil {
					return err
				}
				rules = append(rules, rs...)
			}
			chains, err := ipt.ListChains("nat")
			if err != nil {
				return err
			}
			rules = append(rules, chains...)
			ip6, err := iptables.NewWithProtocol(iptables.ProtocolIPv6)
			if err != nil {
				return err
			}
			fwd, err := ip6.List("filter", "FORWARD")
			if err != nil {
				return err
			}
			chains6, err := ip6.ListChains("filter")
			rules = append(append(rules, fwd...), chains6...)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			if strings.Contains(r, "NODEKIT") {
				t.Errorf("left behind after uninstall: %q", r)
			}
		}
	})
}

// TestMetaproxyRequireIMDSv2 runs metaproxy with --require-imdsv2: tokenless
// requests get 401 while the SDKs, which fetch a token first, still get
// their pod's role.
func TestMetaproxyRequireIMDSv2(t *testing.T) {
	b := mpStartBed(t)
	ctx := t.Context()
	pods := b.sb.Pods()
	b.namespace("strict", map[string]string{"iam.amazonaws.com/allowed-roles": `["strict-*"]`})
	b.pod(pods[0], "strict", "cli", map[string]string{"iam.amazonaws.com/role": "strict-cli"})
	b.pod(pods[1], "strict", "gosdk", map[string]string{"iam.amazonaws.com/role": "strict-go"})
	b.pod(pods[2], "strict", "boto", map[string]string{"iam.amazonaws.com/role": "strict-boto"})
	b.start("--require-imdsv2")

	if code, _, _ := mpDo(t, pods[0], "GET", mpCredsDir, nil); code != 401 {
		t.Errorf("tokenless request = %d, want 401", code)
	}
	code, tok, _ := mpDo(t, pods[0], "PUT", "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "30"})
	if code != 200 {
		t.Fatalf("token PUT = %d", code)
	}
	if code, body, _ := mpDo(t, pods[0], "GET", mpCredsDir, map[string]string{"X-aws-ec2-metadata-token": tok}); code != 200 || body != "strict-cli" {
		t.Errorf("with token = %d %q", code, body)
	}

	cli := pods[0].Command(ctx, "/usr/bin/aws", "configure", "export-credentials", "--format", "process")
	cli.Env = mpPodEnv(b)
	var out struct{ AccessKeyId string }
	if err := json.Unmarshal([]byte(mpRun(t, cli)), &out); err != nil {
		t.Fatal(err)
	}
	if got := b.roleOf(out.AccessKeyId); got != mpBaseARN+"strict-cli" {
		t.Errorf("AWS CLI got %s", got)
	}
	sdk := pods[1].Command(ctx, b.sdkBin)
	sdk.Env = mpPodEnv(b)
	if got := b.roleOf(mpRun(t, sdk)); got != mpBaseARN+"strict-go" {
		t.Errorf("Go SDK got %s", got)
	}
	boto := pods[2].Command(ctx, mpBotocorePython(t), "-c", "import botocore.session; print(botocore.session.get_session().get_credentials().access_key)")
	boto.Env = mpPodEnv(b, "AWS_EC2_METADATA_V1_DISABLED=true")
	if got := b.roleOf(mpRun(t, boto)); got != mpBaseARN+"strict-boto" {
		t.Errorf("botocore got %s", got)
	}
}

// The figures of issue 3, as benchmarks (make bench), not timed tests.
//
//	go test -run '^$' -bench BenchmarkMetaproxy -benchtime 2000x ./test/e2e
func BenchmarkMetaproxy(b *testing.B) {
	bed := mpStartBed(b)
	ctx := b.Context()
	pods := bed.sb.Pods()
	node := bed.sb.Node()
	bed.namespace("bench", map[string]string{"iam.amazonaws.com/allowed-roles": `["*"]`})
	for i, p := range pods {
		bed.pod(p, "bench", fmt.Sprintf("client-%d", i), map[string]string{"iam.amazonaws.com/role": "bench-role"})
	}
	// The emulator's IMDS, reachable from the pods on the node IP, is the
	// baseline for the credential path.
	directLn, err := node.Listen("tcp", net.JoinHostPort(node.IP().String(), "8282"))
	if err != nil {
		b.Fatal(err)
	}
	mpServe(b, directLn, bed.emu.IMDSHandler())
	bed.start("--log-level", "warn")

	const clients = 16
	credPath := func(base, role string) string { return base + mpCredsDir + role }
	run := func(b *testing.B, url string) {
		// Each client is a keep-alive HTTP client inside a pod namespace.
		hcs := make([]*http.Client, clients)
		for i := range hcs {
			hcs[i] = pods[i%len(pods)].HTTPClient()
		}
		lat := make([][]time.Duration, clients)
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		b.ResetTimer()
		start := time.Now()
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := c; i < b.N; i += clients {
					t0 := time.Now()
					resp, err := hcs[c].Get(url)
					if err != nil {
						errs <- err
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						errs <- fmt.Errorf("%s: %s", url, resp.Status)
						return
					}
					lat[c] = append(lat[c], time.Since(t0))
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		b.StopTimer()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		var all []time.Duration
		for _, l := range lat {
			all = append(all, l...)
		}
		slices.Sort(all)
		if len(all) > 0 {
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
		}
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	}
	b.Run("credentials/direct-emulator", func(b *testing.B) {
		run(b, credPath("http://"+net.JoinHostPort(node.IP().String(), "8282"), awsemu.DefaultNodeRole))
	})
	b.Run("credentials/metaproxy", func(b *testing.B) {
		run(b, credPath(mpMetaURL, "bench-role"))
	})

	fresh := 0 // sub-benchmarks run more than once; names must stay unique
	b.Run("first-request-300ms-after-pod-sts-120ms", func(b *testing.B) {
		bed.emu.SetFault("AssumeRole", awsemu.Fault{Latency: 120 * time.Millisecond})
		defer bed.emu.ClearFaults()
		p := pods[len(pods)-1]
		hc := p.HTTPClient()
		var total time.Duration
		_ = kubeapi.DeletePod(ctx, bed.client, "bench", fmt.Sprintf("client-%d", len(pods)-1))
		for range b.N {
			b.StopTimer()
			if fresh > 0 {
				_ = kubeapi.DeletePod(ctx, bed.client, "bench", fmt.Sprintf("fresh-%d", fresh-1))
			}
			i := fresh
			fresh++
			name := fmt.Sprintf("fresh-%d", i)
			bed.pod(p, "bench", name, map[string]string{"iam.amazonaws.com/role": fmt.Sprintf("fresh-role-%d", i)})
			time.Sleep(300 * time.Millisecond) // the scenario: the pod appeared 300 ms before it asks
			b.StartTimer()
			t0 := time.Now()
			resp, err := hc.Get(credPath(mpMetaURL, fmt.Sprintf("fresh-role-%d", i)))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			total += time.Since(t0)
			if resp.StatusCode != 200 {
				b.Fatalf("first request: %s", resp.Status)
			}
		}
		b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "first-request-ms")
	})

	memPods := false
	b.Run("rss-110-pods-20-roles", func(b *testing.B) {
		for i := range 110 {
			if memPods {
				break
			}
			name := fmt.Sprintf("mem-%d", i)
			if _, err := kubeapi.CreatePod(ctx, bed.client, kubeapi.PodSpec{Namespace: "bench", Name: name, Node: mpNode,
				Annotations: map[string]string{"iam.amazonaws.com/role": fmt.Sprintf("mem-role-%d", i%20)}}); err != nil {
				b.Fatal(err)
			}
			if _, err := kubeapi.SetPodRunning(ctx, bed.client, "bench", name, fmt.Sprintf("100.97.%d.%d", i/200, i%200+1)); err != nil {
				b.Fatal(err)
			}
		}
		memPods = true
		// Every pod's credentials prefetched: one AssumeRole per pod session.
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		err := bed.emu.WaitFor(wctx, func() bool {
			n := 0
			for _, c := range bed.emu.STSCalls() {
				if strings.HasPrefix(c.RoleSessionName, "bench.mem-") && c.ErrorCode == "" {
					n++
				}
			}
			return n >= 110
		})
		if err != nil {
			b.Fatalf("prefetch of 110 pods: %v", err)
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", bed.proc.Process.Pid))
		if err != nil {
			b.Fatal(err)
		}
		var rssKB float64
		for _, line := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")), "%g", &rssKB)
			}
		}
		for range b.N {
		}
		b.ReportMetric(rssKB/1024, "rss-MiB")
	})
}
