//go:build e2e

package e2e

// nodekit as its users run it (issue 13): the image `make image` built,
// imported into a real node's containerd and applied with the README's own
// kustomization and kubectl commands, on a kubelet with a bridge CNI. Pods
// created by a Deployment get their roles' credentials through
// 169.254.169.254 and never the node's; logs that containerd wrote and the
// kubelet rotated and gzipped reach CloudWatch Logs once each, in order,
// across a nodekit pod's replacement, a rollout restart and a pod deleted
// while logship was away; nodeexp names the kubelet's real pod cgroups.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodekit/nodekit/deploy"
	"github.com/nodekit/nodekit/pkg/logship/record"
	"github.com/nodekit/nodekit/test/awsemu"
	"github.com/nodekit/nodekit/test/kubeapi"
	"github.com/nodekit/nodekit/test/realnode"
	"github.com/nodekit/nodekit/test/sandbox"
)

const (
	rnAppsImage = "localhost/apps:v1"
	rnGroup     = "/aws/containerinsights/my-cluster/application"
	rnRole      = "web-role"
)

// rnBed is the real node with nodekit installed by the README's steps.
type rnBed struct {
	t        *testing.T
	node     *realnode.Node
	kit      *realnode.Nodekit
	manifest *deploy.Manifest
	root     string
}

func rnStart(t *testing.T) *rnBed { return rnStartWith(t, rnOptions{}) }

// rnOptions vary the bed for the fault tests.
type rnOptions struct {
	// node changes the node's configuration.
	node func(*realnode.Config)
	// beforeInstall runs on the node before nodekit is installed.
	beforeInstall func(*realnode.Node)
}

func rnStartWith(t *testing.T, opts rnOptions) *rnBed {
	t.Helper()
	sandbox.RequireRoot(t)
	root := mpRepoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	steps, err := realnode.ParseInstall(string(readme))
	if err != nil {
		t.Fatalf("README's install block: %v", err)
	}
	archive := os.Getenv("NODEKIT_IMAGE")
	if archive == "" {
		t.Fatal("NODEKIT_IMAGE is not set: run `make e2e`, which builds the image as the README says (make image IMAGE_REF=...)")
	}
	if want := filepath.Join(root, steps.Archive); archive != want {
		t.Fatalf("NODEKIT_IMAGE=%s, but the README imports %s", archive, want)
	}
	manifestData, err := os.ReadFile(filepath.Join(root, "deploy", "nodekit.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := deploy.ParseManifest(manifestData)
	if err != nil {
		t.Fatal(err)
	}
	cfg := realnode.Config{
		// Small enough for the kubelet to rotate and gzip several times
		// while the tests write.
		ContainerLogMaxSize:         "64Ki",
		ContainerLogMaxFiles:        4,
		ContainerLogMonitorInterval: 3 * time.Second,
		// A deleted pod's log files stay until the test has read them back.
		MinimumContainerTTL: 10 * time.Minute,
		AWS:                 awsemu.Options{StrictCredentials: true},
	}
	if opts.node != nil {
		opts.node(&cfg)
	}
	node := realnode.Start(t, cfg)
	ctx := t.Context()
	apps, err := realnode.NewBusyboxImage(ctx, realnode.File{Path: "/usr/local/bin/awsclient", Source: rnStaticAWSClient(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := node.ImportImage(ctx, rnAppsImage, apps); err != nil {
		t.Fatal(err)
	}
	if opts.beforeInstall != nil {
		opts.beforeInstall(node)
	}
	start := time.Now()
	kit, err := node.InstallNodekit(ctx, realnode.InstallConfig{Steps: steps, ImageArchive: archive, DeployDir: filepath.Join(root, "deploy")})
	if err != nil {
		t.Fatalf("installing nodekit as the README says: %v\nkubelet log:\n%s", err, rnLogTail(node, "kubelet"))
	}
	t.Logf("nodekit installed and ready in %v", time.Since(start).Round(100*time.Millisecond))
	return &rnBed{t: t, node: node, kit: kit, manifest: manifest, root: root}
}

// rnStaticAWSClient builds testdata/awsclient without cgo, for the busybox
// image that has no libc.
func rnStaticAWSClient(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "awsclient")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./testdata/awsclient")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building awsclient: %v\n%s", err, b)
	}
	return out
}

func rnLogTail(node *realnode.Node, daemon string) string {
	b, err := os.ReadFile(filepath.Join(node.LogDir(), daemon+".log"))
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func TestRealNodeDeploy(t *testing.T) {
	b := rnStart(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	b.checkDaemonSetPod(ctx)
	b.checkInterception(ctx)

	// Application pods: a Deployment with a role, one with a role its
	// namespace does not allow, one without a role.
	client := b.node.Kube.Client()
	if _, err := kubeapi.EnsureNamespace(ctx, client, "shop", map[string]string{"iam.amazonaws.com/allowed-roles": `["` + rnRole + `"]`}); err != nil {
		t.Fatal(err)
	}
	web := b.deployment(ctx, "shop", "web", 2, map[string]string{"iam.amazonaws.com/role": rnRole}, "sleep 3600")
	intruder := b.pod(ctx, "shop", "intruder", map[string]string{"iam.amazonaws.com/role": "admin-role"}, "sleep 3600")
	norole := b.pod(ctx, "shop", "norole", nil, "sleep 3600")

	t.Run("credentials", func(t *testing.T) {
		for _, p := range web {
			b.checkCredentials(ctx, t, p)
		}
		if status, body := b.imds(ctx, intruder, "GET", "/latest/meta-data/iam/security-credentials/admin-role", ""); status != 403 {
			t.Errorf("a role the namespace does not allow: %d %q; want 403", status, body)
		}
		if status, body := b.imds(ctx, norole, "GET", "/latest/meta-data/iam/security-credentials/", ""); status != 404 {
			t.Errorf("a pod without a role: %d %q; want 404", status, body)
		}
	})

	t.Run("metrics", func(t *testing.T) { b.checkMetrics(ctx, t, web) })
	t.Run("agent logs", func(t *testing.T) { b.checkAgentLogs(ctx, t) })
	t.Run("logs across rotation and gzip", func(t *testing.T) { b.checkRotation(ctx, t) })
	t.Run("logs across the nodekit pod's replacement", func(t *testing.T) { b.checkReplacement(ctx, t) })
	t.Run("a pod deleted while logship was down", func(t *testing.T) { b.checkDeletedWhileDown(ctx, t) })
	t.Run("a host-interface that misses the pods", func(t *testing.T) { b.checkWrongInterface(ctx, t, web[0]) })
	t.Run("rollout restart", func(t *testing.T) { b.checkRolloutRestart(ctx, t) })

	// Across everything above: no pod's request ever reached the node's
	// own metadata service, where the node's role is.
	podNet := netip.MustParsePrefix(realnode.PodCIDR)
	for _, r := range b.node.AWS.IMDSRequests() {
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil && podNet.Contains(ap.Addr()) {
			t.Errorf("a pod's request reached the node's metadata service: %s %s from %s (status %d)", r.Method, r.Path, r.RemoteAddr, r.Status)
		}
	}

	// logship creates each stream before its first put: no put was refused
	// for a stream it had not made (16 of 122 puts were, in a first trial).
	if n := b.node.AWS.Count("PutLogEvents:ResourceNotFoundException"); n != 0 {
		t.Errorf("%d PutLogEvents went to streams logship had not created (of %d)", n, b.node.AWS.Count("PutLogEvents"))
	}

	t.Run("uninstall", func(t *testing.T) { b.checkUninstall(ctx, t) })
}

// checkDaemonSetPod: the pod is Ready, and its three containers are what
// the manifest says, in the API and in the container runtime.
func (b *rnBed) checkDaemonSetPod(ctx context.Context) {
	t := b.t
	pod, err := b.kit.Pod(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := b.manifest.DaemonSet.Spec.Template.Spec
	if len(pod.Spec.Containers) != len(want.Containers) {
		t.Fatalf("pod has %d containers, the manifest %d", len(pod.Spec.Containers), len(want.Containers))
	}
	for i, wc := range want.Containers {
		gc := pod.Spec.Containers[i]
		if gc.Name != wc.Name || gc.Image != "localhost/nodekit:dev" {
			t.Errorf("container %d: %s %s; want %s with the README's image", i, gc.Name, gc.Image, wc.Name)
		}
		for what, pair := range map[string][2]any{
			"command":          {gc.Command, wc.Command},
			"args":             {gc.Args, wc.Args},
			"security context": {gc.SecurityContext, wc.SecurityContext},
			"resources":        {gc.Resources, wc.Resources},
			"ports":            {rnPorts(gc.Ports), rnPorts(wc.Ports)},
			"volume mounts":    {rnMounts(gc.VolumeMounts), wc.VolumeMounts},
			"readiness probe":  {gc.ReadinessProbe, rnProbeDefaults(wc.ReadinessProbe)},
			"liveness probe":   {gc.LivenessProbe, rnProbeDefaults(wc.LivenessProbe)},
			"lifecycle":        {gc.Lifecycle, wc.Lifecycle},
		} {
			if !apiequality.Semantic.DeepEqual(pair[0], pair[1]) {
				t.Errorf("%s's %s in the pod:\n%+v\nthe manifest:\n%+v", wc.Name, what, pair[0], pair[1])
			}
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if !cs.Ready || cs.RestartCount != 0 {
			t.Errorf("container %s: ready %v, %d restarts", cs.Name, cs.Ready, cs.RestartCount)
		}
		b.checkRuntimeSpec(ctx, cs)
	}
}

func rnPorts(ps []corev1.ContainerPort) []corev1.ContainerPort {
	out := append([]corev1.ContainerPort(nil), ps...)
	for i := range out {
		out[i].HostPort = 0 // hostNetwork: the API server copies containerPort here
	}
	return out
}

// rnMounts drops the service-account token mount the API server adds.
func rnMounts(ms []corev1.VolumeMount) []corev1.VolumeMount {
	var out []corev1.VolumeMount
	for _, m := range ms {
		if !strings.HasPrefix(m.Name, "kube-api-access-") {
			out = append(out, m)
		}
	}
	return out
}

// rnProbeDefaults fills what the API server defaults in a probe.
func rnProbeDefaults(p *corev1.Probe) *corev1.Probe {
	if p == nil {
		return nil
	}
	p = p.DeepCopy()
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = 1
	}
	if p.HTTPGet != nil && p.HTTPGet.Scheme == "" {
		p.HTTPGet.Scheme = corev1.URISchemeHTTP
	}
	return p
}

// checkRuntimeSpec reads the OCI spec containerd gave the container: a
// read-only root, the user, the capabilities, the mounts' propagation.
func (b *rnBed) checkRuntimeSpec(ctx context.Context, cs corev1.ContainerStatus) {
	t := b.t
	id := strings.TrimPrefix(cs.ContainerID, "containerd://")
	out, err := b.node.Ctr(ctx, "containers", "info", id)
	if err != nil {
		t.Errorf("ctr containers info %s: %v\n%s", id, err, out)
		return
	}
	var info struct {
		Spec struct {
			Root    struct{ Readonly bool } `json:"root"`
			Process struct {
				User struct {
					UID            int   `json:"uid"`
					GID            int   `json:"gid"`
					AdditionalGids []int `json:"additionalGids"`
				} `json:"user"`
				Capabilities struct {
					Effective []string `json:"effective"`
				} `json:"capabilities"`
				NoNewPrivileges bool `json:"noNewPrivileges"`
			} `json:"process"`
			Mounts []struct {
				Destination string   `json:"destination"`
				Options     []string `json:"options"`
			} `json:"mounts"`
		}
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Errorf("decoding ctr containers info: %v\n%s", err, out[:min(len(out), 300)])
		return
	}
	sp := info.Spec
	want := map[string]struct {
		uid, gid int
		caps     []string
	}{
		"metaproxy": {0, 0, []string{"CAP_NET_ADMIN", "CAP_NET_RAW"}},
		"logship":   {0, 0, nil},
		"nodeexp":   {65534, 0, nil},
	}[cs.Name]
	caps := slices.Clone(sp.Process.Capabilities.Effective)
	slices.Sort(caps)
	if !sp.Root.Readonly || sp.Process.User.UID != want.uid || sp.Process.User.GID != want.gid ||
		!slices.Equal(caps, want.caps) || !sp.Process.NoNewPrivileges {
		t.Errorf("%s runs with root readonly=%v uid=%d gid=%d caps=%v no_new_privs=%v; want read-only, %d:%d, %v, no new privileges",
			cs.Name, sp.Root.Readonly, sp.Process.User.UID, sp.Process.User.GID, caps, sp.Process.NoNewPrivileges, want.uid, want.gid, want.caps)
	}
	for _, m := range sp.Mounts {
		if m.Destination == "/host/root" && (!slices.Contains(m.Options, "rslave") || !slices.Contains(m.Options, "ro")) {
			t.Errorf("nodeexp's /host/root mount options %v: want ro and rslave (HostToContainer)", m.Options)
		}
	}
}

// checkInterception: metaproxy installed its rules in the node's network
// namespace through the image's iptables, root filesystem read-only.
func (b *rnBed) checkInterception(ctx context.Context) {
	t := b.t
	rules := b.iptablesSave(ctx)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^-A PREROUTING .*-j NODEKIT-METAPROXY$`),
		regexp.MustCompile(`(?m)^-A NODEKIT-METAPROXY -d 169\.254\.169\.254/32 -i cni0 -p tcp .*--dport 80 .*-j DNAT --to-destination 10\.99\.0\.2:8181$`),
		regexp.MustCompile(`(?m)^-A FORWARD .*-j NODEKIT-METAPROXY$`),
		regexp.MustCompile(`(?m)^-A NODEKIT-METAPROXY -d 169\.254\.169\.254/32 -p tcp .*--dport 80 .*-j REJECT --reject-with tcp-reset$`),
	} {
		if !want.MatchString(rules) {
			t.Errorf("the node's iptables lack %s:\n%s", want, rules)
		}
	}
}

func (b *rnBed) iptablesSave(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "nsenter", "--net="+b.node.NodeNS.Path(), "iptables-save").CombinedOutput()
	if err != nil {
		b.t.Fatalf("iptables-save in the node: %v\n%s", err, out)
	}
	return string(out)
}

func (b *rnBed) deployment(ctx context.Context, ns, name string, replicas int32, annotations map[string]string, script string) []*corev1.Pod {
	t := b.t
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec:       rnPodSpec(name, script),
			},
		},
	}
	if _, err := b.node.Kube.Client().AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pods []*corev1.Pod
	waitFor(t, ctx, 2*time.Minute, "deployment "+name+"'s pods Running", func() (bool, string) {
		list, err := b.node.Kube.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil {
			return false, err.Error()
		}
		pods = pods[:0]
		for i := range list.Items {
			if p := &list.Items[i]; p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
				pods = append(pods, p)
			}
		}
		return len(pods) == int(replicas), fmt.Sprintf("%d of %d running", len(pods), replicas)
	})
	return pods
}

func rnPodSpec(name, script string) corev1.PodSpec {
	return corev1.PodSpec{
		Containers: []corev1.Container{{
			Name: name, Image: rnAppsImage, ImagePullPolicy: corev1.PullNever,
			Command: []string{"sh", "-c", script},
		}},
		TerminationGracePeriodSeconds: new(int64(1)),
	}
}

func (b *rnBed) pod(ctx context.Context, ns, name string, annotations map[string]string, script string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations, Labels: map[string]string{"app": name, "team": "e2e"}},
		Spec:       rnPodSpec(name, script),
	}
	if _, err := b.node.Kube.Client().CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		b.t.Fatal(err)
	}
	return waitPodRunning(b.t, ctx, b.node, ns, name)
}

// exec runs a command in a pod's (only) container.
func (b *rnBed) exec(ctx context.Context, p *corev1.Pod, cmd ...string) (string, error) {
	return b.node.Kubectl(ctx, append([]string{"exec", "-n", p.Namespace, p.Name, "--"}, cmd...)...)
}

// imds makes a raw HTTP/1.0 request to 169.254.169.254 from the pod, with
// busybox's nc, and returns the status (0: no answer, a refusal) and body.
func (b *rnBed) imds(ctx context.Context, p *corev1.Pod, method, path, headers string) (int, string) {
	script := fmt.Sprintf(`printf '%s %s HTTP/1.0\r\nHost: 169.254.169.254\r\n%s\r\n' | nc -w 5 169.254.169.254 80`, method, path, headers)
	out, _ := b.exec(ctx, p, "sh", "-c", script)
	head, body, _ := strings.Cut(out, "\r\n\r\n")
	f := strings.Fields(head)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/") {
		return 0, out
	}
	status, _ := strconv.Atoi(f[1])
	return status, body
}

// checkCredentials: the pod's role through the Go SDK's default chain,
// IMDSv1 and IMDSv2.
func (b *rnBed) checkCredentials(ctx context.Context, t *testing.T, p *corev1.Pod) {
	roleOf := func(accessKey string) string {
		arn, _, ok := b.node.AWS.RoleForAccessKey(accessKey)
		if !ok {
			return "unknown key " + accessKey
		}
		if arn == b.node.AWS.NodeRoleArn() {
			t.Errorf("pod %s got the node's role", p.Name)
		}
		return arn[strings.LastIndexByte(arn, '/')+1:]
	}
	out, err := b.exec(ctx, p, "env", "AWS_REGION=", "awsclient")
	if err != nil {
		t.Fatalf("the Go SDK in %s: %v", p.Name, err)
	}
	var sdk credentials
	if err := json.Unmarshal([]byte(out[strings.IndexByte(out, '{'):]), &sdk); err != nil {
		t.Fatalf("awsclient output %q: %v", out, err)
	}
	if got := roleOf(sdk.AccessKeyID); got != rnRole || sdk.Region != b.node.AWS.Region() {
		t.Errorf("the Go SDK in %s got role %s, region %s; want %s, %s", p.Name, got, sdk.Region, rnRole, b.node.AWS.Region())
	}

	const credPath = "/latest/meta-data/iam/security-credentials/"
	if status, body := b.imds(ctx, p, "GET", credPath, ""); status != 200 || strings.TrimSpace(body) != rnRole {
		t.Errorf("IMDSv1 role listing in %s: %d %q", p.Name, status, body)
	}
	status, body := b.imds(ctx, p, "GET", credPath+rnRole, "")
	v1 := rnDecodeCreds(t, status, body)
	if got := roleOf(v1); got != rnRole {
		t.Errorf("IMDSv1 credentials in %s are role %s", p.Name, got)
	}
	status, token := b.imds(ctx, p, "PUT", "/latest/api/token", `X-aws-ec2-metadata-token-ttl-seconds: 60\r\n`)
	if status != 200 || token == "" {
		t.Fatalf("IMDSv2 token in %s: %d %q", p.Name, status, token)
	}
	status, body = b.imds(ctx, p, "GET", credPath+rnRole, `X-aws-ec2-metadata-token: `+token+`\r\n`)
	v2 := rnDecodeCreds(t, status, body)
	if got := roleOf(v2); got != rnRole {
		t.Errorf("IMDSv2 credentials in %s are role %s", p.Name, got)
	}
}

func rnDecodeCreds(t *testing.T, status int, body string) string {
	t.Helper()
	var c struct{ Code, AccessKeyId string }
	if status != 200 || json.Unmarshal([]byte(body), &c) != nil || c.Code != "Success" {
		t.Fatalf("credentials answer %d %q", status, body)
	}
	return c.AccessKeyId
}

// checkMetrics: the three agents answer Prometheus on the node IP, and
// nodeexp names the real pods from the kubelet's cgroups and log
// directories.
func (b *rnBed) checkMetrics(ctx context.Context, t *testing.T, web []*corev1.Pod) {
	for _, port := range []int{realnode.MetaproxyOpsPort, realnode.LogshipOpsPort, realnode.NodeexpPort} {
		status, body, err := b.kit.Get(ctx, port, "/metrics")
		if err != nil || status != 200 || !strings.Contains(body, "# TYPE ") {
			t.Errorf("scraping %s:%d: %d %v", realnode.NodeIP, port, status, err)
		}
	}
	waitFor(t, ctx, time.Minute, "nodeexp's series for the web pods", func() (bool, string) {
		_, body, err := b.kit.Get(ctx, realnode.NodeexpPort, "/metrics")
		if err != nil {
			return false, err.Error()
		}
		for _, p := range web {
			series := fmt.Sprintf(`nodeexp_pod_memory_working_set_bytes{namespace="shop",pod="%s"`, p.Name)
			if !strings.Contains(body, series) {
				return false, "no " + series + " in:\n" + rnGrep(body, "nodeexp_pod_memory_working_set_bytes")
			}
		}
		if strings.Contains(body, `namespace="",pod=""`) {
			return false, "unnamed pod series:\n" + rnGrep(body, `namespace=""`)
		}
		return true, ""
	})
	if _, body, _ := b.kit.Get(ctx, realnode.MetaproxyOpsPort, "/metrics"); !strings.Contains(body, "\nmetaproxy_pods_not_intercepted 0\n") {
		t.Errorf("metaproxy_pods_not_intercepted is not 0:\n%s", rnGrep(body, "metaproxy_pods_not_intercepted"))
	}
}

func rnGrep(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// checkAgentLogs: `kubectl logs` shows each agent's structured log.
func (b *rnBed) checkAgentLogs(ctx context.Context, t *testing.T) {
	pod, err := b.kit.Pod(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"metaproxy", "logship", "nodeexp"} {
		out, err := b.node.Kubectl(ctx, "logs", "-n", realnode.NodekitNamespace, pod.Name, "-c", c)
		if err != nil {
			t.Errorf("kubectl logs %s: %v", c, err)
			continue
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		for _, l := range lines {
			var rec struct{ Time, Level, Msg string }
			if err := json.Unmarshal([]byte(l), &rec); err != nil || rec.Time == "" || rec.Level == "" || rec.Msg == "" {
				t.Errorf("%s logged a line that is not a structured record: %q", c, l)
				break
			}
		}
		if len(lines) == 0 || !strings.Contains(out, "starting") {
			t.Errorf("%s's log has no start-up record:\n%s", c, out)
		}
	}
}

// A logging workload: "<tag> <stream> <n>" lines on stdout and stderr, and
// every 250th stdout line padded past the runtime's 16 KiB split, so the
// log holds partial (P) lines logship must join.
func rnLoggerScript(tag string, n, pauseEvery int, pause string) string {
	return fmt.Sprintf(`pad=$(head -c 20000 /dev/zero | tr '\0' x)
i=0
while [ $i -lt %d ]; do
  if [ $((i %% 250)) -eq 0 ]; then echo "%s out $i $pad"; else echo "%s out $i"; fi
  echo "%s err $i" >&2
  i=$((i+1))
  if [ $((i %% %d)) -eq 0 ]; then sleep %s; fi
done
echo "%s done"
sleep 3600`, n, tag, tag, tag, pauseEvery, pause, tag)
}

// records returns the CloudWatch records of a pod's container, in order.
func (b *rnBed) records(p *corev1.Pod) []record.Record {
	var recs []record.Record
	prefix := fmt.Sprintf("%s_%s_%s-", p.Name, p.Namespace, p.Spec.Containers[0].Name)
	for _, stream := range b.node.AWS.LogStreams(rnGroup) {
		if !strings.HasPrefix(stream, prefix) {
			continue
		}
		for _, e := range b.node.AWS.Events(rnGroup, stream) {
			var r record.Record
			if err := json.Unmarshal([]byte(e.Message), &r); err != nil {
				b.t.Errorf("event in %s is not a JSON record: %v", stream, err)
				continue
			}
			recs = append(recs, r)
		}
	}
	return recs
}

// waitLogged waits until the pod's records include its "<tag> done" line.
func (b *rnBed) waitLogged(ctx context.Context, t *testing.T, p *corev1.Pod, tag string, timeout time.Duration) []record.Record {
	t.Helper()
	var recs []record.Record
	deadline := time.Now().Add(timeout)
	for {
		recs = b.records(p)
		for _, r := range recs {
			if r.Log == tag+" done" {
				return recs
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	// What logship said about the pod, and what the kubelet's files hold.
	var said []string
	if pod, err := b.kit.Pod(ctx); err == nil {
		out, _ := b.node.Kubectl(ctx, "logs", "-n", realnode.NodekitNamespace, pod.Name, "-c", "logship")
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, p.Name) || strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) {
				said = append(said, l)
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join("/var/log/pods", fmt.Sprintf("%s_%s_%s", p.Namespace, p.Name, p.UID), "*", "*"))
	var last string
	if len(recs) > 0 {
		last = recs[len(recs)-1].Log
	}
	t.Fatalf("%s's last line did not reach CloudWatch Logs in %v: %d records, the last %.60q; the kubelet's files %v; logship's log:\n%s",
		tag, timeout, len(recs), last, files, strings.Join(said, "\n"))
	return nil
}

// checkExactlyOnce: every line 0..n-1 of both streams once, in order,
// whole (long lines joined), with the pod's metadata.
func rnCheckExactlyOnce(t *testing.T, p *corev1.Pod, tag string, recs []record.Record, n int) {
	t.Helper()
	next := map[string]int{"out": 0, "err": 0}
	for _, r := range recs {
		k := r.Kubernetes
		if k.PodName != p.Name || k.NamespaceName != p.Namespace || k.PodID != string(p.UID) || k.Host != realnode.NodeName ||
			k.ContainerName != p.Spec.Containers[0].Name || k.Labels["app"] != p.Labels["app"] || k.ContainerImage == "" || k.DockerID == "" {
			t.Fatalf("record without the pod's metadata: %+v", k)
		}
		f := strings.Fields(r.Log)
		if len(f) < 3 || f[0] != tag {
			continue
		}
		want, ok := next[f[1]]
		if !ok || (f[1] == "out") != (r.Stream == "stdout") {
			t.Fatalf("line %q came as %s", r.Log[:min(len(r.Log), 60)], r.Stream)
		}
		v, err := strconv.Atoi(f[2])
		if err != nil || v != want {
			t.Fatalf("%s %s: got line %q, want number %d (a loss, a repeat or a reordering)", tag, f[1], r.Log[:min(len(r.Log), 60)], want)
		}
		if f[1] == "out" && v%250 == 0 && (len(f) != 4 || len(f[3]) != 20000) {
			t.Fatalf("%s out %d: the long line came in pieces (%d bytes)", tag, v, len(r.Log))
		}
		next[f[1]]++
	}
	if next["out"] != n || next["err"] != n {
		t.Fatalf("%s: %d stdout and %d stderr lines of %d", tag, next["out"], next["err"], n)
	}
}

// checkRotation: a pod logs through several kubelet rotations, the older
// files gzipped; every line arrives once.
func (b *rnBed) checkRotation(ctx context.Context, t *testing.T) {
	const n = 3000
	p := b.pod(ctx, "shop", "logger", nil, rnLoggerScript("rot", n, 100, "0.3"))
	logDir := filepath.Join("/var/log/pods", fmt.Sprintf("shop_logger_%s", p.UID), "logger")
	gzipped := map[string]bool{}
	rotated := 0
	recs := b.waitLogged(ctx, t, p, "rot", 3*time.Minute)
	// The kubelet's files, seen while they were written above, are checked
	// below; poll once more now for what is left.
	entries, _ := os.ReadDir(logDir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".gz") {
			gzipped[e.Name()] = true
		}
		if e.Name() != "0.log" {
			rotated++
		}
	}
	if len(gzipped) == 0 || rotated < 2 {
		t.Errorf("the kubelet rotated %d files and gzipped %d in %s: the test did not see rotation and gzip", rotated, len(gzipped), logDir)
	}
	rnCheckExactlyOnce(t, p, "rot", recs, n)
}

// checkReplacement: the nodekit pod is deleted while a pod logs; the
// DaemonSet's next pod resumes from the checkpoints on the hostPath.
func (b *rnBed) checkReplacement(ctx context.Context, t *testing.T) {
	const n = 4000
	old, err := b.kit.Pod(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := b.pod(ctx, "shop", "logger2", nil, rnLoggerScript("rep", n, 200, "0.5"))
	time.Sleep(2 * time.Second) // some lines shipped by the old pod
	if _, err := b.node.Kubectl(ctx, "delete", "pod", "-n", realnode.NodekitNamespace, old.Name, "--wait=true"); err != nil {
		t.Fatal(err)
	}
	if err := b.kit.WaitRollout(ctx); err != nil {
		t.Fatal(err)
	}
	recs := b.waitLogged(ctx, t, p, "rep", 3*time.Minute)
	rnCheckExactlyOnce(t, p, "rep", recs, n)
	b.checkNoRestarts(ctx, t)
}

// checkDeletedWhileDown: a pod logs; logship goes away (the DaemonSet's pod
// leaves the node, shipping what it has read in its preStop); the pod is
// deleted while logship is away; when nodekit is back, every line is in
// CloudWatch Logs once, with the pod's metadata, and the new logship lets go
// of the vanished container's checkpoint without shipping anything twice.
//
// Lines a pod writes while logship is away are another matter on a real
// node: when the pod is deleted, the kubelet removes its containers and
// their log files at once, so lines logship had not read yet are gone with
// them (README, "For operators"). The test bed's fixture files hid this.
func (b *rnBed) checkDeletedWhileDown(ctx context.Context, t *testing.T) {
	const n = 600
	p := b.pod(ctx, "shop", "victim", nil, rnLoggerScript("vic", n, 100, "0.2"))
	waitFor(t, ctx, 2*time.Minute, "the victim to finish writing", func() (bool, string) {
		out, _ := b.node.Kubectl(ctx, "logs", "-n", "shop", "victim", "--tail=1")
		return strings.Contains(out, "vic done"), out
	})
	b.patchDaemonSet(ctx, `{"spec":{"template":{"spec":{"nodeSelector":{"nodekit.io/e2e-away":"true"}}}}}`)
	waitFor(t, ctx, 2*time.Minute, "the nodekit pod to leave the node", func() (bool, string) {
		_, err := b.kit.Pod(ctx)
		return err != nil, ""
	})
	if _, err := b.node.Kubectl(ctx, "delete", "pod", "-n", "shop", "victim", "--wait=true"); err != nil {
		t.Fatal(err)
	}
	shipped := len(b.records(p))
	b.patchDaemonSet(ctx, `{"spec":{"template":{"spec":{"nodeSelector":null}}}}`)
	if err := b.kit.WaitRollout(ctx); err != nil {
		t.Fatal(err)
	}
	recs := b.waitLogged(ctx, t, p, "vic", 2*time.Minute)
	rnCheckExactlyOnce(t, p, "vic", recs, n)
	// The new logship had nothing left of the victim to ship.
	time.Sleep(5 * time.Second)
	if again := len(b.records(p)); again != shipped {
		t.Errorf("the victim's stream had %d records when logship left and %d after it came back", shipped, again)
	}
}

func (b *rnBed) patchDaemonSet(ctx context.Context, patch string) {
	if _, err := b.node.Kubectl(ctx, "patch", "daemonset", "-n", realnode.NodekitNamespace, realnode.NodekitDaemonSet, "--type=merge", "-p", patch); err != nil {
		b.t.Fatal(err)
	}
}

// A prober asks for its credentials every 100 ms and prints what it got:
// "probe <status line words> <AccessKeyId or ->" or "probe refused".
const rnProberScript = `while true; do
  r=$(printf 'GET /latest/meta-data/iam/security-credentials/` + rnRole + ` HTTP/1.0\r\nHost: 169.254.169.254\r\n\r\n' | nc -w 2 169.254.169.254 80)
  if [ -z "$r" ]; then echo "probe refused"; else
    key=$(echo "$r" | sed -n 's/.*"AccessKeyId" *: *"\([^"]*\)".*/\1/p')
    echo "probe $(echo "$r" | head -1 | tr -d '\r') ${key:--}"
  fi
  usleep 100000
done`

// probeTally is what a prober was answered.
type probeTally struct {
	// Statuses counts answers by status ("200", "404", "refused", ...).
	Statuses map[string]int
	// Early counts the answers each container of the prober got before its
	// first credentials: a pod's first requests can come before the
	// kubelet has reported its IP and the informer has it, which metaproxy
	// waits --pod-wait for and then answers 404 (as kube2iam does).
	Early map[string]int
	// Roles counts the keys handed out by role ARN.
	Roles map[string]int
	// stsErrors are the emulator's failed STS calls, for messages.
	stsErrors []string
}

// proberResults reads a prober's answers so far, from its current
// container's log and the one before, if the node restarted it.
func (b *rnBed) proberResults(ctx context.Context, t *testing.T, p *corev1.Pod) probeTally {
	tally := probeTally{Statuses: map[string]int{}, Early: map[string]int{}, Roles: map[string]int{}}
	for _, c := range b.node.AWS.STSCalls() {
		if c.ErrorCode != "" {
			tally.stsErrors = append(tally.stsErrors, fmt.Sprintf("%s %s %s: %s", c.Time.Format("15:04:05.000"), c.Action, c.RoleArn, c.ErrorCode))
		}
	}
	var runs []string
	if prev, err := b.node.Kubectl(ctx, "logs", "-n", p.Namespace, p.Name, "--previous"); err == nil {
		runs = append(runs, prev)
	}
	out, err := b.node.Kubectl(ctx, "logs", "-n", p.Namespace, p.Name)
	if err != nil {
		t.Fatal(err)
	}
	runs = append(runs, out)
	for _, run := range runs {
		served := false
		sc := bufio.NewScanner(strings.NewReader(run))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			status := ""
			switch {
			case len(f) == 2 && f[1] == "refused":
				status = "refused"
			case len(f) >= 4 && f[0] == "probe":
				status = f[2]
				if key := f[len(f)-1]; key != "-" {
					arn, _, ok := b.node.AWS.RoleForAccessKey(key)
					if arn == b.node.AWS.NodeRoleArn() {
						t.Errorf("the prober was handed the node's role")
					}
					if !ok {
						arn = "unknown"
					}
					tally.Roles[arn]++
				}
			default:
				continue
			}
			tally.Statuses[status]++
			if status == "200" {
				served = true
			} else if !served {
				tally.Early[status]++
			}
		}
	}
	return tally
}

// checkServedOrRefused fails the test for any answer but the pod's role or
// a refused connection, except a 404 before a container's first
// credentials, and for a key of any role but rnRole.
func (tally probeTally) check(t *testing.T, when string) {
	t.Helper()
	for s, n := range tally.Statuses {
		if s == "200" || s == "refused" || s == "404" && tally.Early["404"] == n {
			continue
		}
		t.Errorf("the prober got %d answers %s %s (%d of them before its first credentials); want its role or a refused connection; metaproxy's denials:\n%s\nSTS errors: %s",
			n, s, when, tally.Early[s], rnMetaproxyDenials(), tally.stsErrors)
	}
	for arn := range tally.Roles {
		if !strings.HasSuffix(arn, "/"+rnRole) {
			t.Errorf("the prober was handed %s %s", arn, when)
		}
	}
}

// checkWrongInterface: a host-interface that matches no pod (veth+ on a
// bridge CNI, as a first trial had it) leaves metaproxy unready, names the
// pods and the interface in its log and a metric, and the pods are
// refused, never handed the node's role.
func (b *rnBed) checkWrongInterface(ctx context.Context, t *testing.T, web *corev1.Pod) {
	b.setHostInterface(ctx, "veth+")
	var pod *corev1.Pod
	waitFor(t, ctx, 2*time.Minute, "metaproxy with veth+ to report the pods it misses", func() (bool, string) {
		p, err := b.kit.Pod(ctx)
		if err != nil {
			return false, err.Error()
		}
		pod = p
		out, _ := b.node.Kubectl(ctx, "logs", "-n", realnode.NodekitNamespace, p.Name, "-c", "metaproxy")
		return strings.Contains(out, `"interface":"cni0"`) && strings.Contains(out, `"pod":"shop/web-`) && strings.Contains(out, `"host_interface":"veth+"`), out
	})
	// Readiness follows within its 2 s check.
	waitFor(t, ctx, 30*time.Second, "metaproxy's /readyz to name the missed pods", func() (bool, string) {
		status, body, err := b.kit.Get(ctx, realnode.MetaproxyOpsPort, "/readyz")
		return err == nil && status == 503 && strings.Contains(body, "interception-coverage not ready") && strings.Contains(body, "on cni0"), body
	})
	_, metrics, _ := b.kit.Get(ctx, realnode.MetaproxyOpsPort, "/metrics")
	if v := rnMetric(metrics, "metaproxy_pods_not_intercepted"); v < 2 {
		t.Errorf("metaproxy_pods_not_intercepted = %v, want at least the two web pods", v)
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == "metaproxy" && cs.Ready {
			t.Errorf("metaproxy is Ready with a pattern that misses the pods")
		}
	}
	if status, body := b.imds(ctx, web, "GET", "/latest/meta-data/iam/security-credentials/"+rnRole, ""); status != 0 {
		t.Errorf("a pod the pattern misses got an answer: %d %q; want a refused connection", status, body)
	}
	b.setHostInterface(ctx, "cni0")
	if err := b.kit.WaitRollout(ctx); err != nil {
		t.Fatal(err)
	}
	b.checkCredentials(ctx, t, web)
}

func (b *rnBed) setHostInterface(ctx context.Context, pattern string) {
	patch := fmt.Sprintf(`{"data":{"metaproxy.host-interface":%q}}`, pattern)
	if _, err := b.node.Kubectl(ctx, "patch", "configmap", "-n", realnode.NodekitNamespace, "nodekit", "--type=merge", "-p", patch); err != nil {
		b.t.Fatal(err)
	}
	if _, err := b.node.Kubectl(ctx, "rollout", "restart", "-n", realnode.NodekitNamespace, "daemonset/"+realnode.NodekitDaemonSet); err != nil {
		b.t.Fatal(err)
	}
}

func rnMetric(text, name string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// checkRolloutRestart: while nodekit restarts, a pod logging loses no line,
// and a pod asking for credentials gets its role or a refusal, never the
// node's role.
func (b *rnBed) checkRolloutRestart(ctx context.Context, t *testing.T) {
	const n = 4000
	prober := b.pod(ctx, "shop", "prober", map[string]string{"iam.amazonaws.com/role": rnRole}, rnProberScript)
	p := b.pod(ctx, "shop", "logger3", nil, rnLoggerScript("rr", n, 200, "0.5"))
	time.Sleep(2 * time.Second)
	// The old metaproxy's log goes with its pod: follow it meanwhile.
	var oldLog demoBuffer
	if old, err := b.kit.Pod(ctx); err == nil {
		follow := b.node.KubectlCommand(ctx, "logs", "-f", "-n", realnode.NodekitNamespace, old.Name, "-c", "metaproxy")
		follow.Stdout = &oldLog
		if err := follow.Start(); err == nil {
			defer func() { follow.Process.Kill(); follow.Wait() }()
		}
	}
	if _, err := b.node.Kubectl(ctx, "rollout", "restart", "-n", realnode.NodekitNamespace, "daemonset/"+realnode.NodekitDaemonSet); err != nil {
		t.Fatal(err)
	}
	if err := b.kit.WaitRollout(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // the prober is served by the new metaproxy
	defer func() {
		if t.Failed() {
			t.Logf("the old metaproxy's log:\n%s", rnGrep(oldLog.String(), `"denied"`))
		}
	}()
	recs := b.waitLogged(ctx, t, p, "rr", 3*time.Minute)
	rnCheckExactlyOnce(t, p, "rr", recs, n)
	tally := b.proberResults(ctx, t, prober)
	t.Logf("the prober during the restart: %v, roles %v", tally.Statuses, tally.Roles)
	tally.check(t, "during the restart")
	if tally.Statuses["200"] == 0 || tally.Statuses["refused"] == 0 {
		t.Errorf("the prober saw %v: want answers before and after and refusals while metaproxy was away", tally.Statuses)
	}
	b.checkNoRestarts(ctx, t)
}

func (b *rnBed) checkNoRestarts(ctx context.Context, t *testing.T) {
	pod, err := b.kit.Pod(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.RestartCount != 0 || cs.LastTerminationState.Terminated != nil {
			t.Errorf("%s restarted %d times (last: %+v)", cs.Name, cs.RestartCount, cs.LastTerminationState.Terminated)
		}
	}
}

// checkUninstall: `kubectl delete -k` and `metaproxy uninstall` leave no
// rule of metaproxy's in the node.
func (b *rnBed) checkUninstall(ctx context.Context, t *testing.T) {
	if err := b.kit.Uninstall(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.iptablesSave(ctx), "NODEKIT-METAPROXY") {
		t.Fatal("the rules went with the pod: pods would reach the node's metadata service while metaproxy is away")
	}
	bin := filepath.Join(os.Getenv("NODEKIT_BIN"), "metaproxy")
	if out, err := exec.CommandContext(ctx, "nsenter", "--net="+b.node.NodeNS.Path(), bin, "uninstall").CombinedOutput(); err != nil {
		t.Fatalf("metaproxy uninstall: %v\n%s", err, out)
	}
	if rules := b.iptablesSave(ctx); strings.Contains(rules, "NODEKIT-METAPROXY") {
		t.Errorf("rules left after metaproxy uninstall:\n%s", rules)
	}
}

// rnMetaproxyDenials is every metaproxy's log of denied requests, from the
// kubelet's files of the current and earlier nodekit pods.
func rnMetaproxyDenials() string {
	files, _ := filepath.Glob("/var/log/pods/" + realnode.NodekitNamespace + "_*/metaproxy/*.log*")
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "denied") || strings.Contains(l, "unavailable") || strings.Contains(l, "stopping") || strings.Contains(l, "starting") {
				out = append(out, filepath.Base(filepath.Dir(filepath.Dir(f)))+": "+l)
			}
		}
	}
	return strings.Join(out, "\n")
}
