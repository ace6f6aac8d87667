//go:build e2e

package e2e

// End-to-end test of deploy/ (issue 6) on the test bed's real
// kube-apiserver: the manifest applies with server-side validation, its
// ServiceAccount may read pods and namespaces and nothing else, and the
// three agents, started with the manifest's own command lines and a token
// minted for that ServiceAccount, become ready without an RBAC denial and
// export every metric the alerts and the dashboard query.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/deploy"
	"github.com/nodekit/nodekit/test/awsemu"
	"github.com/nodekit/nodekit/test/kubeapi"
	"github.com/nodekit/nodekit/test/testbed"
)

const (
	deployNamespace = "nodekit"
	deploySA        = "system:serviceaccount:nodekit:nodekit"
	deployDir       = "../../deploy"
)

func TestDeploy(t *testing.T) {
	binDir := os.Getenv("NODEKIT_BIN")
	if binDir == "" {
		t.Fatal("NODEKIT_BIN is not set: run `make e2e`, which builds the agents into bin/")
	}
	manifestPath, err := filepath.Abs(filepath.Join(deployDir, "nodekit.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	manifestData, err := os.ReadFile(manifestPath)
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := deploy.ParseManifest(manifestData)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	bed := testbed.Start(t, testbed.Config{})
	kubectl := deployKubectl{bed: bed, home: t.TempDir()}

	t.Run("manifest applies with server-side validation", func(t *testing.T) {
		out, err := kubectl.run(ctx, "apply", "--server-side", "--validate=strict", "--field-manager=nodekit-e2e", "-f", manifestPath)
		if err != nil {
			t.Fatalf("kubectl apply: %v\n%s", err, out)
		}
		for _, want := range []string{"namespace/nodekit", "serviceaccount/nodekit", "clusterrole.rbac.authorization.k8s.io/nodekit",
			"clusterrolebinding.rbac.authorization.k8s.io/nodekit", "configmap/nodekit", "daemonset.apps/nodekit"} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl apply did not report %s:\n%s", want, out)
			}
		}
		// The monitoring Service needs no CRD: apply it too.
		docs, err := deploy.Documents(deployRead(t, "monitoring/servicemonitor.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		svc := filepath.Join(t.TempDir(), "service.json")
		if err := os.WriteFile(svc, docs[0], 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := kubectl.run(ctx, "apply", "--server-side", "--validate=strict", "--field-manager=nodekit-e2e", "-f", svc); err != nil {
			t.Fatalf("kubectl apply of the monitoring Service: %v\n%s", err, out)
		}
	})

	t.Run("a pod of the DaemonSet passes admission", func(t *testing.T) {
		// No controller-manager runs, so no pod is created from the
		// DaemonSet; a server-side dry run of its template goes through
		// the same validation and admission (priority class, Pod Security).
		ds, err := bed.Client().AppsV1().DaemonSets(deployNamespace).Get(ctx, "nodekit", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "nodekit-dry-run", Namespace: deployNamespace, Labels: ds.Spec.Template.Labels},
			Spec:       *ds.Spec.Template.Spec.DeepCopy(),
		}
		pod.Spec.NodeName = testbed.NodeName
		got, err := bed.Client().CoreV1().Pods(deployNamespace).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatalf("dry-run create of the DaemonSet's pod: %v", err)
		}
		if got.Spec.Priority == nil || *got.Spec.Priority < 2000000000 {
			t.Errorf("pod priority %v, want system-node-critical's", got.Spec.Priority)
		}
	})

	t.Run("ServiceAccount reads pods and namespaces and nothing more", func(t *testing.T) {
		allowed := [][]string{
			{"get", "pods"}, {"list", "pods"}, {"watch", "pods"},
			{"get", "namespaces"}, {"list", "namespaces"}, {"watch", "namespaces"},
			{"list", "pods", "--all-namespaces"}, {"watch", "pods", "--all-namespaces"},
		}
		denied := [][]string{
			{"get", "secrets"}, {"list", "secrets", "--all-namespaces"}, {"watch", "secrets"},
			{"create", "pods"}, {"update", "pods"}, {"patch", "pods"}, {"delete", "pods"}, {"deletecollection", "pods"},
			{"create", "pods", "--subresource=eviction"}, {"get", "pods", "--subresource=log"},
			{"create", "pods", "--subresource=exec"}, {"patch", "pods", "--subresource=status"},
			{"create", "namespaces"}, {"patch", "namespaces"}, {"delete", "namespaces"},
			{"get", "nodes"}, {"list", "nodes"}, {"patch", "nodes"},
			{"get", "configmaps"}, {"list", "configmaps"}, {"create", "serviceaccounts", "--subresource=token"},
			{"list", "daemonsets.apps"}, {"create", "tokenreviews.authentication.k8s.io"},
			{"escalate", "clusterroles.rbac.authorization.k8s.io"}, {"*", "*"},
		}
		for _, c := range allowed {
			if ok := kubectl.canI(t, ctx, c...); !ok {
				t.Errorf("%s cannot %v; it must", deploySA, c)
			}
		}
		for _, c := range denied {
			if ok := kubectl.canI(t, ctx, c...); ok {
				t.Errorf("%s can %v; it must not", deploySA, c)
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	// A token for the ServiceAccount, as the kubelet would project it.
	tr, err := bed.Client().CoreV1().ServiceAccounts(deployNamespace).CreateToken(ctx, "nodekit", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: deployPtr[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for ServiceAccount nodekit: %v", err)
	}
	saKubeconfig, err := bed.Kube.WriteKubeconfig(filepath.Join(t.TempDir(), "nodekit.kubeconfig"), "nodekit", tr.Status.Token)
	if err != nil {
		t.Fatal(err)
	}

	// The cluster the agents meet: a namespace restricting roles, a pod with
	// an allowed role and one asking for a role it may not have.
	if _, err := kubeapi.EnsureNamespace(ctx, bed.Client(), "shop", map[string]string{
		"iam.amazonaws.com/allowed-roles": `["app-role","flaky-role"]`,
	}); err != nil {
		t.Fatal(err)
	}
	web, err := bed.AddPod(ctx, kubeapi.PodSpec{Namespace: "shop", Name: "web", Labels: map[string]string{"app": "web"},
		Annotations: map[string]string{"iam.amazonaws.com/role": "app-role"}})
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := bed.AddPod(ctx, kubeapi.PodSpec{Namespace: "shop", Name: "rogue",
		Annotations: map[string]string{"iam.amazonaws.com/role": "admin-role"}})
	if err != nil {
		t.Fatal(err)
	}

	// Host paths of the manifest's volumes, mapped to this machine. A new
	// hostPath in the manifest fails here until the test knows where it
	// points.
	varLog := t.TempDir()
	hostPaths := map[string]string{
		"/run/xtables.lock":        "/run/xtables.lock",
		"/var/log":                 varLog,
		"/var/lib/nodekit/logship": t.TempDir(),
		"/proc":                    "/proc",
		"/sys":                     deployFakeSys(t, web.API.UID),
		"/":                        "/",
	}
	// logship finds the web pod's container log, as the kubelet lays it out.
	containerID := strings.Repeat("ab", 32)
	logFile := filepath.Join(varLog, "pods", "shop_web_"+string(web.API.UID), "app", "0.log")
	now := time.Now().UTC()
	deployWriteLines(t, logFile,
		// Older than CloudWatch accepts (14 days): counted as rejected.
		now.Add(-20*24*time.Hour).Format(time.RFC3339Nano)+" stdout F too old to keep",
		now.Format(time.RFC3339Nano)+" stdout F hello from web",
		now.Format(time.RFC3339Nano)+" stderr F second line",
	)
	if err := os.MkdirAll(filepath.Join(varLog, "containers"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(logFile, filepath.Join(varLog, "containers", "web_shop_app-"+containerID+".log")); err != nil {
		t.Fatal(err)
	}

	settings := map[string]string{
		"metaproxy.base-role-arn":          "arn:aws:iam::" + bed.AWS.AccountID() + ":role/",
		"metaproxy.namespace-restrictions": "true", // so metaproxy watches namespaces too
	}
	agents := map[string]*deployAgent{}
	for _, name := range []string{"metaproxy", "logship", "nodeexp"} {
		a, err := deployStartAgent(ctx, t, bed, manifest, name, binDir, saKubeconfig, settings, hostPaths)
		if err != nil {
			t.Fatal(err)
		}
		agents[name] = a
	}

	t.Run("agents become ready with the ServiceAccount's token", func(t *testing.T) {
		var wg sync.WaitGroup
		for _, a := range agents {
			wg.Go(func() {
				if err := a.waitReady(ctx, 90*time.Second); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("traffic", func(t *testing.T) {
		// metaproxy: credentials for an allowed role, a denial, IMDSv2 token.
		creds := web.Net.HTTPClient()
		if code, body := deployGet(t, ctx, creds, "http://169.254.169.254/latest/meta-data/iam/security-credentials/app-role"); code != 200 || !strings.Contains(body, "AccessKeyId") {
			t.Errorf("web pod's credentials: HTTP %d %s", code, body)
		}
		if code, body := deployGet(t, ctx, rogue.Net.HTTPClient(), "http://169.254.169.254/latest/meta-data/iam/security-credentials/admin-role"); code != http.StatusForbidden {
			t.Errorf("rogue pod asking for admin-role: HTTP %d %s, want 403", code, body)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://169.254.169.254/latest/api/token", nil)
		req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
		if resp, err := creds.Do(req); err != nil {
			t.Errorf("IMDSv2 token: %v", err)
		} else {
			resp.Body.Close()
		}

		// STS failing: a new pod's role cannot be assumed while STS throttles.
		before := bed.AWS.Count("AssumeRole")
		bed.AWS.SetFault("AssumeRole", awsemu.Fault{ThrottleEvery: 1})
		flaky, err := bed.AddPod(ctx, kubeapi.PodSpec{Namespace: "shop", Name: "flaky",
			Annotations: map[string]string{"iam.amazonaws.com/role": "flaky-role"}})
		if err != nil {
			t.Fatal(err)
		}
		deployGet(t, ctx, flaky.Net.HTTPClient(), "http://169.254.169.254/latest/meta-data/iam/security-credentials/flaky-role")
		if err := bed.AWS.WaitFor(ctx, func() bool { return bed.AWS.Count("AssumeRole") > before }); err != nil {
			t.Errorf("metaproxy never called STS for flaky-role: %v", err)
		}
		bed.AWS.ClearFaults()

		// logship: the lines reach CloudWatch, then a throttled put is retried.
		group, stream := "/aws/containerinsights/my-cluster/application", "web_shop_app-"+containerID
		if evs, err := bed.AWS.WaitEvents(ctx, group, stream, 2); err != nil {
			t.Errorf("web's lines in %s/%s: %v (groups: %v)", group, stream, err, bed.AWS.LogGroups())
		} else {
			// Labels come from the pod informer, listing with the
			// ServiceAccount's token.
			var rec struct {
				Kubernetes struct {
					PodID  string            `json:"pod_id"`
					Labels map[string]string `json:"labels"`
				} `json:"kubernetes"`
			}
			if err := json.Unmarshal([]byte(evs[0].Message), &rec); err != nil || rec.Kubernetes.PodID != string(web.API.UID) || rec.Kubernetes.Labels["app"] != "web" {
				t.Errorf("shipped record lacks the pod's metadata (%v): %s", err, evs[0].Message)
			}
		}
		// Throttle every put until one was refused, then let the retry in.
		puts := bed.AWS.Count("PutLogEvents")
		bed.AWS.SetFault("PutLogEvents", awsemu.Fault{ThrottleEvery: 1})
		deployWriteLines(t, logFile, time.Now().UTC().Format(time.RFC3339Nano)+" stdout F after throttling")
		if err := bed.AWS.WaitFor(ctx, func() bool { return bed.AWS.Count("PutLogEvents") > puts }); err != nil {
			t.Errorf("no PutLogEvents after a new line: %v", err)
		}
		bed.AWS.ClearFaults()
		if _, err := bed.AWS.WaitEvents(ctx, group, stream, 3); err != nil {
			t.Errorf("line after throttling: %v", err)
		}
		bed.AWS.ClearFaults()
	})

	t.Run("alerts and dashboard query only exported metrics", func(t *testing.T) {
		exported := map[string]map[string]bool{} // series name -> its label names
		for _, a := range agents {
			for name, labels := range a.seriesLabels(t, ctx) {
				exported[name] = labels
			}
		}
		// nodeexp names the pod from its informer (the ServiceAccount's
		// token again); before a sync it would only know the cgroup's uid.
		if body := agents["nodeexp"].scrape(t, ctx); !strings.Contains(body, `namespace="shop"`) || !strings.Contains(body, `pod="web"`) {
			t.Errorf("nodeexp's pod series lack the web pod's namespace and name:\n%s", deployGrep(body, "nodeexp_pod_"))
		}
		queries := deployQueries(t)
		var referenced []string
		for _, q := range queries {
			referenced = append(referenced, deploy.MetricNames(q.expr)...)
		}
		slices.Sort(referenced)
		var missing []string
		for _, m := range slices.Compact(referenced) {
			if _, ok := exported[m]; ok {
				continue
			}
			if why, ok := deployNotScraped(m); ok {
				t.Logf("%s: not in /metrics (%s)", m, why)
				continue
			}
			// A labelled metric has no series until its first event (a
			// dropped event, a lost file): then its name must at least be
			// one an agent declares, so a typo or a rename still fails.
			if file := deployDeclared(t, m); file != "" {
				t.Logf("%s: no series yet in this run; declared in %s", m, file)
				continue
			}
			missing = append(missing, m)
		}
		if len(missing) > 0 {
			t.Errorf("metrics queried by deploy/monitoring but exported by no agent: %v", missing)
		}

		// Every label a query matches or groups by is on one of its
		// metrics, or is a target label the ServiceMonitor adds.
		for _, q := range queries {
			metrics, labels := deploy.Refs(q.expr)
			seen := false
			for _, m := range metrics {
				_, ok := exported[m]
				seen = seen || ok
			}
			if !seen {
				continue
			}
			for _, l := range labels {
				switch l {
				case "node", "instance", "job":
					continue
				}
				if !slices.ContainsFunc(metrics, func(m string) bool {
					return exported[m][l] || l == "le" && strings.HasSuffix(m, "_bucket")
				}) {
					t.Errorf("%s: label %q is on none of %v", q.where, l, metrics)
				}
			}
		}
	})

	t.Run("no RBAC denial in the agents' logs", func(t *testing.T) {
		for name, a := range agents {
			if log := a.output.String(); strings.Contains(strings.ToLower(log), "forbidden") {
				t.Errorf("%s logged an RBAC denial:\n%s", name, deployTail(log, 4000))
			}
		}
	})

	t.Run("agents stop on SIGTERM", func(t *testing.T) {
		for name, a := range agents {
			if err := a.stop(15 * time.Second); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	})
}

// deployNotScraped explains names the monitoring files may query that no
// agent writes: Prometheus adds them per target.
func deployNotScraped(name string) (string, bool) {
	switch name {
	case "up":
		return "written by Prometheus for every target", true
	}
	return "", false
}

func deployPtr[T any](v T) *T { return &v }

func deployRead(t *testing.T, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(deployDir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

type deployQuery struct{ where, expr string }

// deployQueries lists every PromQL expression of the PrometheusRule and the
// dashboard.
func deployQueries(t *testing.T) []deployQuery {
	t.Helper()
	_, rules, err := deploy.ParsePrometheusRule(deployRead(t, "monitoring/prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, panels, err := deploy.ParseDashboard(deployRead(t, "monitoring/dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var qs []deployQuery
	for _, r := range rules {
		qs = append(qs, deployQuery{"alert " + r.Alert, r.Expr})
	}
	for _, p := range panels {
		qs = append(qs, deployQuery{"panel " + p.Panel, p.Expr})
	}
	return qs
}

// deployDeclared returns the agent source file (under pkg/) that declares
// metric name, or "".
func deployDeclared(t *testing.T, name string) string {
	t.Helper()
	var found string
	err := filepath.WalkDir("../../pkg", func(path string, d os.DirEntry, err error) error {
		if err != nil || found != "" || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte(`"`+name+`"`)) {
			found = strings.TrimPrefix(path, "../../")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// deployFakeSys builds a stand-in for the node's /sys: the real one's
// entries as symlinks, except fs/cgroup, which holds a cgroup v2 tree with
// the kubelet's layout and one pod (this machine runs no kubelet, so its
// own cgroups hold no pods for nodeexp's pod collector to find).
func deployFakeSys(t *testing.T, uid types.UID) string {
	t.Helper()
	root := deployOpenTempDir(t)
	link := func(dir, real string, skip string) {
		entries, err := os.ReadDir(real)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() == skip {
				continue
			}
			if err := os.Symlink(filepath.Join(real, e.Name()), filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	link(root, "/sys", "fs")
	fs := filepath.Join(root, "fs")
	if err := os.MkdirAll(fs, 0o755); err != nil {
		t.Fatal(err)
	}
	link(fs, "/sys/fs", "cgroup")
	cg := filepath.Join(fs, "cgroup")
	pod := filepath.Join(cg, "kubepods.slice", "kubepods-burstable.slice",
		"kubepods-burstable-pod"+strings.ReplaceAll(string(uid), "-", "_")+".slice")
	files := map[string]string{
		filepath.Join(cg, "cgroup.controllers"): "cpuset cpu io memory pids\n",
		filepath.Join(pod, "cpu.stat"):          "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 10\nnr_throttled 1\nthrottled_usec 1000\n",
		filepath.Join(pod, "memory.current"):    "52428800\n",
		filepath.Join(pod, "memory.stat"):       "anon 41943040\nfile 10485760\ninactive_file 4194304\n",
		filepath.Join(pod, "memory.events"):     "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
		filepath.Join(pod, "pids.current"):      "7\n",
		filepath.Join(pod, "io.stat"):           "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
	}
	for path, content := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func deployWriteLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.WriteString(f, strings.Join(lines, "\n")+"\n"); err != nil {
		t.Fatal(err)
	}
}

func deployGet(t *testing.T, ctx context.Context, c *http.Client, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return 0, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body)
}

func deployLastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func deployTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// deployKubectl runs the test bed's kubectl inside the node namespace, where
// the API server listens, with the admin kubeconfig.
type deployKubectl struct {
	bed  *testbed.Bed
	home string
}

func (k deployKubectl) run(ctx context.Context, args ...string) (string, error) {
	cmd := k.bed.Sandbox.Node().Command(ctx, k.bed.Kube.Kubectl(), append([]string{"--kubeconfig", k.bed.Kube.Kubeconfig()}, args...)...)
	// kubectl caches discovery under $HOME; keep it out of the real one.
	cmd.Env = []string{"HOME=" + k.home, "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// canI asks `kubectl auth can-i ... --as` for the ServiceAccount; exit 0 is
// yes, 1 is no, anything else fails the test.
func (k deployKubectl) canI(t *testing.T, ctx context.Context, args ...string) bool {
	t.Helper()
	all := append([]string{"auth", "can-i"}, args...)
	if !slices.Contains(args, "--all-namespaces") {
		all = append(all, "--namespace", "shop")
	}
	out, err := k.run(ctx, append(all, "--as", deploySA)...)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return true
	case errors.As(err, &exit) && exit.ExitCode() == 1 && deployLastLine(out) == "no":
		return false
	default:
		t.Fatalf("kubectl auth can-i %v: %v\n%s", args, err, out)
		return false
	}
}

// deployAgent is one agent process started from the manifest.
type deployAgent struct {
	name   string
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	output *output
	// readyURL and liveURL are what the kubelet's probes GET; metricsURL
	// is what the ServiceMonitor scrapes (the readiness probe's port).
	readyURL, liveURL, metricsURL string
	client                        *http.Client
}

// deployStartAgent runs the manifest's container name in the node namespace:
// its command and args as the kubelet would expand them (ConfigMap values
// with settings overriding them, the downward API filled from the bed), host
// paths mapped through hostPaths, plus --kubeconfig for the ServiceAccount's
// token (in a pod the in-cluster configuration does that).
func deployStartAgent(ctx context.Context, t *testing.T, bed *testbed.Bed, m *deploy.Manifest, name, binDir, kubeconfig string,
	settings, hostPaths map[string]string) (*deployAgent, error) {
	c, ok := m.Container(name)
	if !ok {
		return nil, fmt.Errorf("manifest has no container %s", name)
	}
	nodeIP := bed.Sandbox.Node().IP().String()
	env, err := m.Env(c, settings, map[string]string{"spec.nodeName": testbed.NodeName, "status.hostIP": nodeIP})
	if err != nil {
		return nil, err
	}
	// Where each mount path of the container lives on this machine.
	volumes := map[string]string{}
	for _, v := range m.DaemonSet.Spec.Template.Spec.Volumes {
		if v.HostPath == nil {
			return nil, fmt.Errorf("volume %s is not a hostPath; teach the test about it", v.Name)
		}
		local, ok := hostPaths[v.HostPath.Path]
		if !ok {
			return nil, fmt.Errorf("volume %s: no local stand-in for hostPath %s; add one to the test", v.Name, v.HostPath.Path)
		}
		volumes[v.Name] = local
	}
	mounts := map[string]string{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.MountPath] = volumes[vm.Name]
	}
	argv := append(slices.Clone(c.Command), c.Args...)
	for i := range argv {
		argv[i] = deployMapPaths(deploy.Expand(argv[i], env), mounts)
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("container %s has no command", name)
	}
	argv[0] = filepath.Join(binDir, filepath.Base(argv[0]))
	// In a pod the kubelet makes the token readable by the container's
	// user; here each agent gets its own copy, owned by its uid.
	uid, gid := deployIDs(c)
	own, err := deployOwnCopy(t, kubeconfig, uid, gid)
	if err != nil {
		return nil, err
	}
	argv = append(argv, "--kubeconfig="+own)

	a := &deployAgent{name: name, done: make(chan struct{}), output: &output{}, client: bed.Sandbox.Node().HTTPClient()}
	// The kubelet probes the pod IP, which is the node IP with hostNetwork.
	probeURL := func(pr *corev1.Probe) string {
		if pr == nil || pr.HTTPGet == nil {
			return ""
		}
		for _, p := range c.Ports {
			if p.Name == pr.HTTPGet.Port.String() || fmt.Sprint(p.ContainerPort) == pr.HTTPGet.Port.String() {
				return "http://" + net.JoinHostPort(nodeIP, fmt.Sprint(p.ContainerPort)) + pr.HTTPGet.Path
			}
		}
		return ""
	}
	a.readyURL, a.liveURL = probeURL(c.ReadinessProbe), probeURL(c.LivenessProbe)
	if a.readyURL == "" || a.liveURL == "" {
		return nil, fmt.Errorf("container %s: no HTTP readiness or liveness probe on a declared port", name)
	}
	a.metricsURL = strings.TrimSuffix(a.readyURL, c.ReadinessProbe.HTTPGet.Path) + "/metrics"
	// The container's uid, gid and capabilities, as the runtime would set
	// them: proof that what the manifest grants is enough.
	priv := append(deploySetpriv(c), argv...)
	a.cmd = bed.Sandbox.Node().Command(context.WithoutCancel(ctx), priv[0], priv[1:]...)
	a.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, bed.AWSEnv()...)
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		a.cmd.Env = append(a.cmd.Env, k+"="+env[k])
	}
	a.cmd.Stdout, a.cmd.Stderr = a.output, a.output
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t.Logf("starting %s", strings.Join(priv, " "))
	if err := a.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		a.err = a.cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		_ = a.stop(10 * time.Second)
		if name == "metaproxy" {
			// Its --iptables rule lives in the node namespace, which the
			// bed removes; uninstall anyway so nothing outlives the test.
			_ = bed.Sandbox.Node().Command(context.Background(), argv[0], "uninstall").Run()
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, deployTail(a.output.String(), 8000))
		}
	})
	return a, nil
}

// deployIDs is the uid and gid the container runs as (the image's default
// user is non-root: the manifest must say when it wants root).
func deployIDs(c corev1.Container) (uid, gid int64) {
	uid, gid = 65532, 65532
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = *sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = *sc.RunAsGroup
		}
	}
	return uid, gid
}

// deploySetpriv is the setpriv(1) prefix that runs a program with the
// container's uid, gid, no supplementary groups, no_new_privs
// (allowPrivilegeEscalation: false) and only the capabilities it adds (a
// process started as root gets exactly its bounding set).
func deploySetpriv(c corev1.Container) []string {
	uid, gid := deployIDs(c)
	caps := "-all"
	if sc := c.SecurityContext; sc != nil && sc.Capabilities != nil {
		for _, add := range sc.Capabilities.Add {
			caps += ",+" + strings.ToLower(string(add))
		}
	}
	args := []string{"setpriv", "--no-new-privs", "--clear-groups", "--inh-caps=-all", "--bounding-set=" + caps}
	if uid != 0 || gid != 0 {
		args = append(args, fmt.Sprintf("--regid=%d", gid), fmt.Sprintf("--reuid=%d", uid))
	}
	return append(args, "--")
}

// deployOwnCopy copies path into a directory the uid can reach and makes
// the copy the uid's.
func deployOwnCopy(t *testing.T, path string, uid, gid int64) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	dir := deployOpenTempDir(t)
	dst := filepath.Join(dir, filepath.Base(path))
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		return "", err
	}
	if err := os.Chown(dst, int(uid), int(gid)); err != nil {
		return "", fmt.Errorf("chown %s: %w", dst, err)
	}
	return dst, nil
}

// deployOpenTempDir is a t.TempDir that other users may traverse (t.TempDir's
// parent is private to root).
func deployOpenTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// deployMapPaths rewrites a flag value that is a container path under one
// of mounts to the same path under the mount's local stand-in.
func deployMapPaths(arg string, mounts map[string]string) string {
	flagName, value, isFlag := strings.Cut(arg, "=")
	if !isFlag || !strings.HasPrefix(value, "/") {
		return arg
	}
	best := ""
	for mp := range mounts {
		if (value == mp || strings.HasPrefix(value, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	if best == "" {
		return arg
	}
	return flagName + "=" + filepath.Join(mounts[best], strings.TrimPrefix(value, best))
}

// waitReady polls /readyz of the external process until 200, the process
// exits, or the bound passes. Nothing scrapes /metrics meanwhile: the
// kubelet's probe alone must see the pod ready, or a DaemonSet rollout
// would stall on a cluster without Prometheus.
func (a *deployAgent) waitReady(ctx context.Context, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	last := ""
	for {
		code, body, err := a.get(ctx, a.readyURL)
		if err == nil && code == 200 {
			if code, body, err := a.get(ctx, a.liveURL); err != nil || code != 200 {
				return fmt.Errorf("%s is ready but its liveness probe %s answers HTTP %d %v %s", a.name, a.liveURL, code, err, body)
			}
			return nil
		}
		last = fmt.Sprintf("HTTP %d %v %s", code, err, strings.TrimSpace(body))
		select {
		case <-a.done:
			return fmt.Errorf("%s exited before it was ready: %v\n%s", a.name, a.err, deployTail(a.output.String(), 4000))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %v (last: %s)", a.name, bound, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (a *deployAgent) get(ctx context.Context, url string) (int, string, error) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	return resp.StatusCode, string(body), err
}

// scrape returns the exposition text of the agent's /metrics.
func (a *deployAgent) scrape(t *testing.T, ctx context.Context) string {
	t.Helper()
	code, body, err := a.get(ctx, a.metricsURL)
	if err != nil || code != 200 {
		t.Fatalf("%s %s: HTTP %d %v", a.name, a.metricsURL, code, err)
	}
	return body
}

func deployGrep(text, prefix string) string {
	var out []string
	for line := range strings.SplitSeq(text, "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// seriesLabels scrapes /metrics and returns every sample name it exposes
// (a histogram x as x_bucket, x_sum and x_count) with the label names its
// series carry.
func (a *deployAgent) seriesLabels(t *testing.T, ctx context.Context) map[string]map[string]bool {
	t.Helper()
	body := a.scrape(t, ctx)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s /metrics does not parse: %v", a.name, err)
	}
	out := map[string]map[string]bool{}
	for name, f := range families {
		if len(f.GetMetric()) == 0 {
			continue
		}
		labels := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = true
			}
		}
		names := []string{name}
		switch f.GetType().String() {
		case "HISTOGRAM", "GAUGE_HISTOGRAM":
			names = []string{name + "_bucket", name + "_sum", name + "_count"}
		case "SUMMARY":
			names = append(names, name+"_sum", name+"_count")
		}
		for _, n := range names {
			out[n] = labels
		}
	}
	return out
}

// stop sends SIGTERM and waits for the exit, then kills.
func (a *deployAgent) stop(grace time.Duration) error {
	select {
	case <-a.done:
		return deployExitErr(a.err)
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
		return deployExitErr(a.err)
	case <-time.After(grace):
		_ = a.cmd.Process.Kill()
		<-a.done
		return fmt.Errorf("%s did not exit within %v of SIGTERM", a.name, grace)
	}
}

func deployExitErr(err error) error {
	if err != nil {
		return fmt.Errorf("exited with %w", err)
	}
	return nil
}
