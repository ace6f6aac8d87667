//go:build e2e

package e2e

// End-to-end test of deploy/monitoring (issue 15) on real parts: the
// Prometheus Operator's CRDs (at a pinned version, from its Go module) on
// the test bed's kube-apiserver accept servicemonitor.yaml and
// prometheusrule.yaml; Debian's Prometheus, in the node namespace and
// configured as the Operator would configure it from servicemonitor.yaml,
// scrapes the three agents started from the manifest, loads every rule
// group, evaluates it without error, and answers every dashboard query with
// data after the test bed's traffic.

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/nodekit/nodekit/deploy"
	"github.com/nodekit/nodekit/test/awsemu"
	"github.com/nodekit/nodekit/test/kubeapi"
	"github.com/nodekit/nodekit/test/prometheus"
	"github.com/nodekit/nodekit/test/testbed"
)

// operatorModule at operatorVersion carries the CRDs the Operator installs
// (example/prometheus-operator-crd).
const (
	operatorModule  = "github.com/prometheus-operator/prometheus-operator"
	operatorVersion = "v0.85.0"
)

// scrapeInterval replaces the ServiceMonitor's 30 s so a test sees several
// samples in seconds; Grafana's $__rate_interval follows it as Grafana
// computes it for a data source with this scrape interval.
const scrapeInterval = time.Second

// notProvoked lists dashboard queries' metrics the test bed cannot make an
// agent write, and why; their queries must still evaluate without error.
var notProvoked = map[string]string{
	"logship_dropped_events_total": "needs CloudWatch to call a batch invalid (InvalidParameterException); the emulator has no fault for that",
}

func TestMonitoring(t *testing.T) {
	binDir := os.Getenv("NODEKIT_BIN")
	if binDir == "" {
		t.Fatal("NODEKIT_BIN is not set: run `make e2e`, which builds the agents into bin/")
	}
	manifestPath, err := filepath.Abs(filepath.Join(deployDir, "nodekit.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := deploy.ParseManifest(deployRead(t, "nodekit.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	bed := testbed.Start(t, testbed.Config{})
	kubectl := deployKubectl{bed: bed, home: t.TempDir()}

	t.Run("Operator CRDs accept the ServiceMonitor and the PrometheusRule", func(t *testing.T) {
		crds := operatorCRDs(t, ctx)
		if out, err := kubectl.run(ctx, "apply", "--server-side", "--field-manager=nodekit-e2e", "-f", crds); err != nil {
			t.Fatalf("applying the Operator's CRDs: %v\n%s", err, out)
		}
		// Polled rather than `kubectl wait`, which fails on a CRD whose
		// status has no conditions yet.
		for _, crd := range []string{"servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com"} {
			var last string
			if err := monPoll(ctx, time.Minute, func() bool {
				last, _ = kubectl.run(ctx, "get", "crd", crd, "-o", `jsonpath={.status.conditions[?(@.type=="Established")].status}`)
				return last == "True"
			}); err != nil {
				t.Fatalf("CRD %s not established: %s", crd, last)
			}
		}
		if out, err := kubectl.run(ctx, "apply", "--server-side", "--validate=strict", "--field-manager=nodekit-e2e", "-f", manifestPath); err != nil {
			t.Fatalf("kubectl apply nodekit.yaml: %v\n%s", err, out)
		}
		out, err := kubectl.run(ctx, "apply", "--server-side", "--validate=strict", "--field-manager=nodekit-e2e",
			"-f", filepath.Join(deployDir, "monitoring/servicemonitor.yaml"), "-f", filepath.Join(deployDir, "monitoring/prometheusrule.yaml"))
		if err != nil {
			t.Fatalf("applying servicemonitor.yaml and prometheusrule.yaml: %v\n%s", err, out)
		}
		for _, want := range []string{"service/nodekit", "servicemonitor.monitoring.coreos.com/nodekit", "prometheusrule.monitoring.coreos.com/nodekit"} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl apply did not report %s:\n%s", want, out)
			}
		}
		// What the API server stored is what the files say (a structural
		// schema prunes what it does not know).
		_, rules, err := deploy.ParsePrometheusRule(deployRead(t, "monitoring/prometheusrule.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		stored, err := kubectl.run(ctx, "get", "prometheusrule", "-n", "nodekit", "nodekit", "-o", "json")
		if err != nil {
			t.Fatalf("reading the PrometheusRule back: %v\n%s", err, stored)
		}
		var pr deploy.PrometheusRule
		if err := json.Unmarshal([]byte(stored), &struct {
			Spec *deploy.RulesFile `json:"spec"`
		}{&pr.Spec}); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, g := range pr.Spec.Groups {
			n += len(g.Rules)
		}
		if n != len(rules) {
			t.Errorf("the API server kept %d rules of %d", n, len(rules))
		}

		// The CRDs validate: mistakes a user could make are refused.
		// Each is refused, and the refusal names the field at fault.
		bad := map[string]string{
			"interval": `
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: bad-interval, namespace: nodekit}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: nodekit}}
  endpoints: [{port: mp-metrics, interval: 30 seconds}]
`,
			"expr": `
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: bad-rule, namespace: nodekit}
spec:
  groups: [{name: g, rules: [{alert: NoExpr, for: 5m}]}]
`,
			"relabellings": `
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: bad-field, namespace: nodekit}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: nodekit}}
  endpoints: [{port: mp-metrics, relabellings: []}]
`,
		}
		for field, doc := range bad {
			path := filepath.Join(t.TempDir(), "bad.yaml")
			if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := kubectl.run(ctx, "apply", "--server-side", "--validate=strict", "--field-manager=nodekit-e2e", "-f", path)
			if err == nil {
				t.Errorf("a mistake in %s was accepted:\n%s", field, out)
			} else if !strings.Contains(out, field) {
				t.Errorf("a mistake in %s was refused for another reason:\n%s", field, out)
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	traffic, loseFile := monStartAgents(t, ctx, bed, manifest, binDir)

	// Prometheus in the node namespace, configured from servicemonitor.yaml.
	svc, sm, err := deploy.ParseServiceMonitor(deployRead(t, "monitoring/servicemonitor.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	nodeIP := bed.Sandbox.Node().IP().String()
	endpoints := map[string][]prometheus.Endpoint{}
	for _, p := range svc.Spec.Ports {
		for _, c := range manifest.DaemonSet.Spec.Template.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == p.TargetPort {
					endpoints[p.Name] = append(endpoints[p.Name], prometheus.Endpoint{
						Address: net.JoinHostPort(nodeIP, fmt.Sprint(cp.ContainerPort)),
						Node:    testbed.NodeName, Pod: "nodekit-x7k2p", Container: c.Name,
					})
				}
			}
		}
	}
	jobs, err := prometheus.FromServiceMonitor(svc, sm, endpoints, scrapeInterval)
	if err != nil {
		t.Fatal(err)
	}
	pr, _, err := deploy.ParsePrometheusRule(deployRead(t, "monitoring/prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rulesFile, err := yaml.Marshal(pr.Spec)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	prom, err := prometheus.Start(ctx, prometheus.Options{
		Netns:      bed.Sandbox.Node(),
		ListenAddr: net.JoinHostPort(nodeIP, "9090"),
		Dir:        t.TempDir(),
		Config: prometheus.Config{
			Global:        prometheus.GlobalConfig{ScrapeInterval: scrapeInterval.String(), EvaluationInterval: scrapeInterval.String()},
			RuleFiles:     []string{"nodekit-rules.yaml"},
			ScrapeConfigs: jobs,
		},
		Files: map[string][]byte{"nodekit-rules.yaml": rulesFile},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := prom.Close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", prom.Output())
		}
	})
	papi := prom.API()

	t.Run("every agent is scraped with the ServiceMonitor's labels", func(t *testing.T) {
		want := []string{"node-exporter", "nodekit-logship", "nodekit-metaproxy"}
		var last string
		err := monPoll(ctx, time.Minute, func() bool {
			v, _, _, err := papi.Query(ctx, "up", time.Now())
			if err != nil {
				last = err.Error()
				return false
			}
			vec, _ := v.(model.Vector)
			var up []string
			for _, s := range vec {
				if s.Value == 1 && s.Metric["node"] == testbed.NodeName && s.Metric["instance"] == testbed.NodeName {
					up = append(up, string(s.Metric["job"]))
				}
			}
			slices.Sort(up)
			last = vec.String()
			return slices.Equal(up, want)
		})
		if err != nil {
			t.Fatalf("targets up with job, node and instance=%s: want jobs %v; last: %s", testbed.NodeName, want, last)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	scraped := func(t *testing.T) {
		t.Helper()
		after := time.Now()
		if err := monPoll(ctx, 30*time.Second, func() bool {
			v, _, _, err := papi.Query(ctx, "min(timestamp(up))", time.Now())
			vec, _ := v.(model.Vector)
			return err == nil && len(vec) == 1 && float64(vec[0].Value) > float64(after.UnixMilli())/1000
		}); err != nil {
			t.Fatalf("no scrape of every agent after %v", after)
		}
	}
	// alerts waits until the alerts are in the states want gives them and
	// none of quiet is pending or firing.
	alerts := func(t *testing.T, want map[string]v1.AlertState, quiet ...string) {
		t.Helper()
		var got map[string]v1.AlertState
		_ = monPoll(ctx, 30*time.Second, func() bool {
			res, err := papi.Alerts(ctx)
			if err != nil {
				return false
			}
			got = map[string]v1.AlertState{}
			for _, a := range res.Alerts {
				got[string(a.Labels["alertname"])] = a.State
			}
			for name, state := range want {
				if got[name] != state {
					return false
				}
			}
			return true
		})
		for name, state := range want {
			if got[name] != state {
				t.Errorf("alert %s: %q, want %q (all: %v)", name, got[name], state, got)
			}
		}
		for _, name := range quiet {
			if state, ok := got[name]; ok {
				t.Errorf("alert %s is %s", name, state)
			}
		}
	}

	traffic(t, scraped)
	// Alerts without a for: clause fire at once, the others wait as
	// pending. (NodekitNodeexpCollectorFailing may be pending: the bed's
	// /sys is a stand-in, where a collector finds nothing to read.)
	t.Run("the traffic's alerts fire from the agents' series", func(t *testing.T) {
		alerts(t, map[string]v1.AlertState{
			// Rejected before Prometheus' first scrape: a series born
			// with its first event.
			"NodekitLogshipRejectedEvents": v1.AlertStateFiring,
			"NodekitMetaproxyDenying":      v1.AlertStatePending,
		}, "NodekitMetaproxyServerErrors", "NodekitLogshipDroppedEvents", "NodekitLogshipFilesLost", "NodekitAgentDown")
	})
	loseFile(t)
	t.Run("a lost file fires its alert", func(t *testing.T) {
		alerts(t, map[string]v1.AlertState{"NodekitLogshipFilesLost": v1.AlertStateFiring})
	})

	t.Run("every rule group loads and evaluates without error", func(t *testing.T) {
		var res v1.RulesResult
		err := monPoll(ctx, time.Minute, func() bool {
			res, err = papi.Rules(ctx, nil)
			if err != nil {
				return false
			}
			for _, g := range res.Groups {
				for _, r := range g.Rules {
					if a, ok := r.(v1.AlertingRule); ok && a.LastEvaluation.Before(started) {
						return false
					}
				}
			}
			return len(res.Groups) == len(pr.Spec.Groups)
		})
		if err != nil {
			t.Fatalf("rule groups not all evaluated: %v (%d loaded)", err, len(res.Groups))
		}
		loaded := map[string]v1.RuleGroup{}
		for _, g := range res.Groups {
			loaded[g.Name] = g
		}
		for _, g := range pr.Spec.Groups {
			lg, ok := loaded[g.Name]
			if !ok {
				t.Errorf("group %s not loaded", g.Name)
				continue
			}
			if len(lg.Rules) != len(g.Rules) {
				t.Errorf("group %s: %d rules loaded, %d written", g.Name, len(lg.Rules), len(g.Rules))
			}
			for _, r := range lg.Rules {
				a, ok := r.(v1.AlertingRule)
				if !ok {
					t.Errorf("group %s: %T, want alerting rules", g.Name, r)
					continue
				}
				if a.Health != v1.RuleHealthGood || a.LastError != "" {
					t.Errorf("alert %s: health %s, error %q", a.Name, a.Health, a.LastError)
				}
			}
		}
	})

	t.Run("every dashboard query returns data", func(t *testing.T) {
		d, _, err := deploy.ParseDashboard(deployRead(t, "monitoring/dashboard.json"))
		if err != nil {
			t.Fatal(err)
		}
		// Grafana's built-ins for a data source scraped every
		// scrapeInterval: $__interval is at least the scrape interval,
		// $__rate_interval = max($__interval + scrape interval, 4 × scrape interval).
		builtins := map[string]string{
			"__interval":      model.Duration(scrapeInterval).String(),
			"__rate_interval": model.Duration(max(2*scrapeInterval, 4*scrapeInterval)).String(),
			"__range":         "5m",
		}
		selections := monVariableSelections(t, ctx, papi, d, started)
		type query struct{ where, expr, last string }
		// An exported_ label means a target label of the ServiceMonitor
		// took the place of an agent's own (honorLabels prevents it).
		misplaced := func(m model.Metric) string {
			for name, value := range m {
				if strings.HasPrefix(string(name), "exported_") {
					return fmt.Sprintf("%s=%q", name, value)
				}
			}
			return ""
		}
		// The workload pod's panels name it, not nodekit's own pod.
		var webSeen bool
		var pending []*query
		for _, sel := range selections {
			vars := map[string]string{"datasource": "prometheus"}
			for k, v := range builtins {
				vars[k] = v
			}
			for k, v := range sel.values {
				vars[k] = v
			}
			for _, q := range monPanelQueries(d) {
				expr, err := deploy.ExpandGrafana(q.expr, vars)
				if err != nil {
					t.Errorf("%s: %v", q.where, err)
					continue
				}
				pending = append(pending, &query{where: q.where + " (" + sel.name + ")", expr: expr})
			}
		}
		// hasData runs q as Grafana's range query over the test's span and
		// reports whether any point is a number (NaN draws nothing).
		hasData := func(q *query) bool {
			v, warnings, _, err := papi.QueryRange(ctx, q.expr, v1.Range{Start: started, End: time.Now(), Step: scrapeInterval})
			if err != nil {
				q.last = "error: " + err.Error()
				return false
			}
			m, _ := v.(model.Matrix)
			q.last = fmt.Sprintf("%d series, warnings %v", len(m), warnings)
			for _, s := range m {
				if bad := misplaced(s.Metric); bad != "" {
					t.Errorf("%s: series %v has %s: an agent's label was overwritten by a target label", q.where, s.Metric, bad)
				}
				if s.Metric["namespace"] == "shop" && s.Metric["pod"] == "web" {
					webSeen = true
				}
			}
			for _, s := range m {
				for _, p := range s.Values {
					if !math.IsNaN(float64(p.Value)) {
						return true
					}
				}
			}
			return false
		}
		// Queries of metrics the bed cannot provoke are run once and
		// must only evaluate; the others get data within the bound.
		var unprovoked []*query
		pending = slices.DeleteFunc(pending, func(q *query) bool {
			if _, ok := monNotProvoked(q.expr); ok {
				unprovoked = append(unprovoked, q)
				return true
			}
			return false
		})
		_ = monPoll(ctx, 45*time.Second, func() bool {
			pending = slices.DeleteFunc(pending, hasData)
			return len(pending) == 0
		})
		for _, q := range pending {
			t.Errorf("%s: %s returns no data (%s)", q.where, q.expr, q.last)
		}
		if !webSeen {
			t.Errorf("no panel shows the web pod as namespace=shop, pod=web")
		}
		for _, q := range unprovoked {
			if hasData(q) {
				continue
			}
			if strings.HasPrefix(q.last, "error") {
				t.Errorf("%s: %s: %s", q.where, q.expr, q.last)
				continue
			}
			why, _ := monNotProvoked(q.expr)
			t.Logf("%s: no data, as expected: %s", q.where, why)
		}
	})
}

// operatorCRDs downloads the Operator's module at operatorVersion from the
// Go module proxy (into the module cache, once) and returns its CRD
// directory.
func operatorCRDs(t *testing.T, ctx context.Context) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", operatorModule+"@"+operatorVersion)
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download %s@%s: %v\n%s", operatorModule, operatorVersion, err, out)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download %s@%s: %v %s\n%s", operatorModule, operatorVersion, err, mod.Error, out)
	}
	dir := filepath.Join(mod.Dir, "example", "prometheus-operator-crd")
	for _, crd := range []string{"monitoring.coreos.com_servicemonitors.yaml", "monitoring.coreos.com_prometheusrules.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, crd)); err != nil {
			t.Fatalf("the Operator's module lacks its CRD: %v", err)
		}
	}
	return dir
}

type monSelection struct {
	name   string
	values map[string]string
}

// monVariableSelections are the values Grafana would give the dashboard's
// query variables: "All" (the variable's allValue) and each value its
// label_values query finds, one at a time, regex-escaped as Grafana does
// for multi-value variables.
func monVariableSelections(t *testing.T, ctx context.Context, papi v1.API, d *deploy.Dashboard, start time.Time) []monSelection {
	t.Helper()
	all := monSelection{name: "All", values: map[string]string{}}
	var singles []monSelection
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		selector, label, ok := deploy.LabelValues(v.QueryString())
		if !ok {
			t.Fatalf("variable %s: only label_values(...) queries are supported, got %q", v.Name, v.QueryString())
		}
		var values model.LabelValues
		err := monPoll(ctx, 30*time.Second, func() bool {
			var err error
			values, _, _, err = papi.LabelValues(ctx, label, []string{selector}, start, time.Now())
			return err == nil && len(values) > 0
		})
		if err != nil {
			t.Fatalf("variable %s: %s finds no values", v.Name, v.QueryString())
		}
		if v.IncludeAll {
			all.values[v.Name] = v.AllValue
		} else {
			all.values[v.Name] = monRegexEscape(string(values[0]))
		}
		for _, val := range values {
			singles = append(singles, monSelection{name: v.Name + "=" + string(val), values: map[string]string{v.Name: monRegexEscape(string(val))}})
		}
	}
	// A single selection keeps "All" for the other variables.
	for i := range singles {
		for k, v := range all.values {
			if _, ok := singles[i].values[k]; !ok {
				singles[i].values[k] = v
			}
		}
	}
	return append([]monSelection{all}, singles...)
}

// monRegexEscape escapes what Grafana escapes in a multi-value variable's
// value.
func monRegexEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`\^$.|?*+()[]{}`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// monPanelQueries are the dashboard's panel queries (variables excluded).
func monPanelQueries(d *deploy.Dashboard) []deployQuery {
	var qs []deployQuery
	var walk func([]deploy.Panel)
	walk = func(ps []deploy.Panel) {
		for _, p := range ps {
			for i, tg := range p.Targets {
				if tg.Expr != "" {
					qs = append(qs, deployQuery{fmt.Sprintf("panel %q query %d", p.Title, i+1), tg.Expr})
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return qs
}

func monNotProvoked(expr string) (string, bool) {
	for _, m := range deploy.MetricNames(expr) {
		if why, ok := notProvoked[m]; ok {
			return why, true
		}
	}
	return "", false
}

// monPoll calls cond until it is true or bound passes.
func monPoll(ctx context.Context, bound time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	for {
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// monStartAgents starts the three agents from the manifest, as TestDeploy
// does, and returns the traffic to run once Prometheus scrapes them
// (credentials and a denial, STS throttled into backoff, log lines shipped,
// rejected and throttled; scraped, which it calls, returns once Prometheus
// has scraped every agent again), and loseFile, which loses a rotated file
// while logship is down.
func monStartAgents(t *testing.T, ctx context.Context, bed *testbed.Bed, manifest *deploy.Manifest, binDir string) (traffic func(t *testing.T, scraped func(*testing.T)), loseFile func(*testing.T)) {
	t.Helper()
	tr, err := bed.Client().CoreV1().ServiceAccounts(deployNamespace).CreateToken(ctx, "nodekit", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: deployPtr[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for ServiceAccount nodekit: %v", err)
	}
	kubeconfig, err := bed.Kube.WriteKubeconfig(filepath.Join(t.TempDir(), "nodekit.kubeconfig"), "nodekit", tr.Status.Token)
	if err != nil {
		t.Fatal(err)
	}
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
	varLog := t.TempDir()
	hostPaths := map[string]string{
		"/run/xtables.lock":        "/run/xtables.lock",
		"/var/log":                 varLog,
		"/var/lib/nodekit/logship": t.TempDir(),
		"/proc":                    "/proc",
		"/sys":                     deployFakeSys(t, web.API.UID),
		"/":                        "/",
	}
	containerID := strings.Repeat("cd", 32)
	logFile := filepath.Join(varLog, "pods", "shop_web_"+string(web.API.UID), "app", "0.log")
	now := time.Now().UTC()
	deployWriteLines(t, logFile,
		now.Add(-20*24*time.Hour).Format(time.RFC3339Nano)+" stdout F too old to keep",
		now.Format(time.RFC3339Nano)+" stdout F hello from web",
	)
	if err := os.MkdirAll(filepath.Join(varLog, "containers"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(logFile, filepath.Join(varLog, "containers", "web_shop_app-"+containerID+".log")); err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{
		"metaproxy.base-role-arn":          "arn:aws:iam::" + bed.AWS.AccountID() + ":role/",
		"metaproxy.namespace-restrictions": "true",
	}
	agents := map[string]*deployAgent{}
	start := func(name string) {
		a, err := deployStartAgent(ctx, t, bed, manifest, name, binDir, kubeconfig, settings, hostPaths)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.waitReady(ctx, 90*time.Second); err != nil {
			t.Fatal(err)
		}
		agents[name] = a
	}
	var wg sync.WaitGroup
	for _, name := range []string{"metaproxy", "logship", "nodeexp"} {
		a, err := deployStartAgent(ctx, t, bed, manifest, name, binDir, kubeconfig, settings, hostPaths)
		if err != nil {
			t.Fatal(err)
		}
		agents[name] = a
		wg.Go(func() {
			if err := a.waitReady(ctx, 90*time.Second); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	traffic = func(t *testing.T, scraped func(*testing.T)) {
		creds := web.Net.HTTPClient()
		// Twice, with a scrape between: a labelled series is born with
		// its first request, and a rate needs an increase Prometheus saw.
		for range 2 {
			if code, body := deployGet(t, ctx, creds, "http://169.254.169.254/latest/meta-data/iam/security-credentials/app-role"); code != 200 {
				t.Errorf("web pod's credentials: HTTP %d %s", code, body)
			}
			if code, _ := deployGet(t, ctx, rogue.Net.HTTPClient(), "http://169.254.169.254/latest/meta-data/iam/security-credentials/admin-role"); code != 403 {
				t.Errorf("rogue pod asking for admin-role: HTTP %d, want 403", code)
			}
			scraped(t)
		}
		// STS throttled: the new role's AssumeRole fails and goes into backoff.
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

		// logship: lines shipped (one rejected as too old), then a
		// throttled put retried.
		group, stream := "/aws/containerinsights/my-cluster/application", "web_shop_app-"+containerID
		if _, err := bed.AWS.WaitEvents(ctx, group, stream, 1); err != nil {
			t.Errorf("web's lines in %s/%s: %v", group, stream, err)
		}
		puts := bed.AWS.Count("PutLogEvents")
		bed.AWS.SetFault("PutLogEvents", awsemu.Fault{ThrottleEvery: 1})
		deployWriteLines(t, logFile, time.Now().UTC().Format(time.RFC3339Nano)+" stdout F after throttling")
		if err := bed.AWS.WaitFor(ctx, func() bool { return bed.AWS.Count("PutLogEvents") > puts }); err != nil {
			t.Errorf("no PutLogEvents after a new line: %v", err)
		}
		bed.AWS.ClearFaults()
		if _, err := bed.AWS.WaitEvents(ctx, group, stream, 2); err != nil {
			t.Errorf("line after throttling: %v", err)
		}

	}
	// A file lost: while logship is down the kubelet rotates 0.log
	// and the rotated file is compressed away; the new 0.log has
	// another head, so logship's checkpoint names a file that is gone.
	loseFile = func(t *testing.T) {
		group, stream := "/aws/containerinsights/my-cluster/application", "web_shop_app-"+containerID
		if err := agents["logship"].stop(15 * time.Second); err != nil {
			t.Errorf("stopping logship: %v", err)
		}
		if err := os.Remove(logFile); err != nil {
			t.Fatal(err)
		}
		deployWriteLines(t, logFile, time.Now().UTC().Format(time.RFC3339Nano)+" stdout F a new file after rotation, with another head")
		start("logship")
		if _, err := bed.AWS.WaitEvents(ctx, group, stream, 3); err != nil {
			t.Errorf("line of the new file: %v", err)
		}
	}
	return traffic, loseFile
}
