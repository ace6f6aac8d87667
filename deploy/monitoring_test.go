package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// promtool finds Debian's promtool (package prometheus, installed by
// `make deps`) or $PROMTOOL.
func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PROMTOOL"); p != "" {
		return p
	}
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: run `make deps` (Debian package prometheus) or set PROMTOOL")
	}
	return p
}

// checkRules runs `promtool check rules` on a rules file.
func checkRules(t *testing.T, rules RulesFile) {
	t.Helper()
	data, err := yaml.Marshal(rules)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool(t), "check", "rules", path).CombinedOutput()
	if err != nil {
		t.Errorf("promtool check rules: %v\n%s\n%s", err, out, data)
	}
}

func TestPrometheusRule(t *testing.T) {
	pr, rules, err := ParsePrometheusRule(readFile(t, "monitoring/prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if pr.Metadata.Namespace != "nodekit" {
		t.Errorf("PrometheusRule namespace %q, want nodekit", pr.Metadata.Namespace)
	}
	checkRules(t, pr.Spec)
	var alerts []string
	for _, r := range rules {
		if r.Alert == "" {
			t.Errorf("group %s: a rule that is not an alert", r.Group)
			continue
		}
		alerts = append(alerts, r.Alert)
		if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" && sev != "info" {
			t.Errorf("alert %s: severity %q", r.Alert, sev)
		}
		if r.Annotations["summary"] == "" {
			t.Errorf("alert %s: no summary", r.Alert)
		}
		if len(MetricNames(r.Expr)) == 0 {
			t.Errorf("alert %s: expression %q names no metric", r.Alert, r.Expr)
		}
	}
	// The list: metaproxy denying or failing STS, logship lag and
	// rejected events, nodeexp collector failures; and ENA's five allowance
	// counters (issue 14).
	for _, metric := range []string{"metaproxy_requests_total", "metaproxy_sts_assume_role_total", "logship_lag_seconds", "logship_rejected_events_total", "node_scrape_collector_success",
		"node_ethtool_bw_in_allowance_exceeded", "node_ethtool_bw_out_allowance_exceeded", "node_ethtool_pps_allowance_exceeded",
		"node_ethtool_conntrack_allowance_exceeded", "node_ethtool_linklocal_allowance_exceeded"} {
		if !slices.ContainsFunc(rules, func(r Rule) bool { return slices.Contains(MetricNames(r.Expr), metric) }) {
			t.Errorf("no alert on %s", metric)
		}
	}
	if len(alerts) != len(slices.Compact(slices.Sorted(slices.Values(alerts)))) {
		t.Errorf("duplicate alert names: %v", alerts)
	}
}

func TestDashboard(t *testing.T) {
	d, queries, err := ParseDashboard(readFile(t, "monitoring/dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard needs a uid and a title, got %q %q", d.UID, d.Title)
	}
	if len(queries) < 10 {
		t.Fatalf("dashboard has %d queries; expected panels for all three agents", len(queries))
	}
	// promtool checks the PromQL once Grafana's variables are filled in.
	group := RuleGroup{Name: "dashboard"}
	agents := map[string]bool{}
	for i, q := range queries {
		names := MetricNames(q.Expr)
		if len(names) == 0 {
			t.Errorf("panel %q: query %q names no metric", q.Panel, q.Expr)
		}
		for _, n := range names {
			agents[strings.SplitN(n, "_", 2)[0]] = true
		}
		group.Rules = append(group.Rules, RuleSpec{Record: fmt.Sprintf("dashboard:query%d", i), Expr: GrafanaVariables(q.Expr)})
	}
	checkRules(t, RulesFile{Groups: []RuleGroup{group}})
	for _, prefix := range []string{"metaproxy", "logship", "node", "nodeexp"} {
		if !agents[prefix] {
			t.Errorf("no panel queries %s_* metrics", prefix)
		}
	}
}

// TestServiceMonitor checks the scrape set-up matches the DaemonSet: every
// Service port targets a named container port, and every endpoint labels
// its series with the node name.
func TestServiceMonitor(t *testing.T) {
	docs, err := Documents(readFile(t, "monitoring/servicemonitor.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type relabel struct {
		SourceLabels []string `json:"sourceLabels"`
		TargetLabel  string   `json:"targetLabel"`
		Replacement  string   `json:"replacement"`
	}
	var svc struct {
		Kind string `json:"kind"`
		Spec struct {
			ClusterIP string            `json:"clusterIP"`
			Selector  map[string]string `json:"selector"`
			Ports     []struct {
				Name       string `json:"name"`
				Port       int    `json:"port"`
				TargetPort string `json:"targetPort"`
			} `json:"ports"`
		} `json:"spec"`
	}
	var sm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Spec       struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			Endpoints []struct {
				Port        string    `json:"port"`
				Relabelings []relabel `json:"relabelings"`
			} `json:"endpoints"`
		} `json:"spec"`
	}
	if len(docs) != 2 {
		t.Fatalf("servicemonitor.yaml has %d documents, want Service and ServiceMonitor", len(docs))
	}
	if err := yaml.Unmarshal(docs[0], &svc); err != nil || svc.Kind != "Service" {
		t.Fatalf("first document: %v (kind %q), want the Service", err, svc.Kind)
	}
	if err := yaml.Unmarshal(docs[1], &sm); err != nil || sm.Kind != "ServiceMonitor" || sm.APIVersion != "monitoring.coreos.com/v1" {
		t.Fatalf("second document: %v (%s %s), want a monitoring.coreos.com/v1 ServiceMonitor", err, sm.APIVersion, sm.Kind)
	}

	m := loadManifest(t)
	podLabels := m.DaemonSet.Spec.Template.Labels
	for k, v := range svc.Spec.Selector {
		if podLabels[k] != v {
			t.Errorf("Service selector %s=%s does not select the DaemonSet's pods %v", k, v, podLabels)
		}
	}
	containerPorts := map[string]int{}
	for _, c := range m.DaemonSet.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			containerPorts[p.Name] = int(p.ContainerPort)
		}
	}
	svcPorts := map[string]bool{}
	for _, p := range svc.Spec.Ports {
		svcPorts[p.Name] = true
		if containerPorts[p.TargetPort] != p.Port {
			t.Errorf("Service port %s (%d) targets %q, container port %d", p.Name, p.Port, p.TargetPort, containerPorts[p.TargetPort])
		}
	}
	var scraped []string
	for _, e := range sm.Spec.Endpoints {
		scraped = append(scraped, e.Port)
		if !svcPorts[e.Port] {
			t.Errorf("ServiceMonitor endpoint port %s is not a Service port", e.Port)
		}
		if !slices.ContainsFunc(e.Relabelings, func(r relabel) bool {
			return r.TargetLabel == "node" && slices.Equal(r.SourceLabels, []string{"__meta_kubernetes_pod_node_name"})
		}) {
			t.Errorf("endpoint %s: no node label from __meta_kubernetes_pod_node_name", e.Port)
		}
	}
	// Every container's probe port is its ops endpoint: all must be scraped.
	for _, c := range m.DaemonSet.Spec.Template.Spec.Containers {
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || !slices.Contains(scraped, c.ReadinessProbe.HTTPGet.Port.String()) {
			t.Errorf("the ops endpoint of %s is not scraped by the ServiceMonitor", c.Name)
		}
	}
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`up{job=~"a|b"} == 0`, []string{"up"}},
		{`sum by (node) (rate(metaproxy_requests_total{code="403"}[5m])) > 0`, []string{"metaproxy_requests_total"}},
		{`sum(rate(a_total[5m])) by (job, le) / ignoring(x) group_left(y) b`, []string{"a_total", "b"}},
		{`histogram_quantile(0.99, sum by (le, class) (rate(x_bucket{node=~"$node"}[$__rate_interval])))`, []string{"x_bucket"}},
		{`topk(10, sum without (cpu) (node_cpu_seconds_total offset 5m))`, []string{"node_cpu_seconds_total"}},
		{`a > bool 1e3 and on (node) b unless c or d`, []string{"a", "b", "c", "d"}},
		{`label_replace(m, "dst", "$1", "src", "(.*)")`, []string{"m"}},
		{`m{l="}{[by (x)"}`, []string{"m"}},
		{`rate(m[5m:30s])`, []string{"m"}},
		{`${var} + ns:recorded:rate5m`, []string{"ns:recorded:rate5m"}},
		{`count(m) by (a) > 0x1F`, []string{"m"}},
		{``, nil},
		{`"unterminated`, nil},
	}
	for _, tc := range tests {
		if got := MetricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("MetricNames(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

func TestRefsLabels(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`up`, nil},
		{`up{job=~"a|b", node != "x"} == 0`, []string{"job", "node"}},
		{`sum by (node, namespace) (rate(m{code="403",reason!~"a,b=c"}[5m]))`, []string{"code", "namespace", "node", "reason"}},
		{`a * on(instance) group_left(nodename) b`, []string{"instance", "nodename"}},
		{`m{l="{x=\"y\"}"}`, []string{"l"}},
		{`sum(m) without (cpu,mode)`, []string{"cpu", "mode"}},
	}
	for _, tc := range tests {
		if _, got := Refs(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("Refs(%q) labels = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

func TestGrafanaVariables(t *testing.T) {
	tests := []struct{ in, want string }{
		{`rate(m{node=~"$node"}[$__rate_interval])`, `rate(m{node=~"x"}[5m])`},
		{`m{a="${a}", b="$b"}`, `m{a="x", b="x"}`},
		{`m`, `m`},
	}
	for _, tc := range tests {
		if got := GrafanaVariables(tc.in); got != tc.want {
			t.Errorf("GrafanaVariables(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzMetricNames(f *testing.F) {
	for _, s := range []string{`sum by (a) (rate(m{x="y"}[5m]))`, `"`, `{`, `$`, `by (`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		metrics, labels := Refs(expr)
		for _, n := range append(metrics, labels...) {
			if n == "" {
				t.Fatalf("Refs(%q) returned an empty name", expr)
			}
		}
		_ = GrafanaVariables(expr)
	})
}

// TestAlertUnitTests runs monitoring/prometheusrule_test.yaml with `promtool
// test rules` and requires of it, for every alert of the PrometheusRule, a
// case where the alert fires and one where it stays silent.
func TestAlertUnitTests(t *testing.T) {
	pr, rules, err := ParsePrometheusRule(readFile(t, "monitoring/prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data, err := yaml.Marshal(pr.Spec)
	if err != nil {
		t.Fatal(err)
	}
	testFile := readFile(t, "monitoring/prometheusrule_test.yaml")
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tests.yaml"), testFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool(t), "test", "rules", filepath.Join(dir, "tests.yaml")).CombinedOutput(); err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}

	var tests struct {
		RuleFiles []string `json:"rule_files"`
		Tests     []struct {
			Name  string `json:"name"`
			Cases []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(testFile, &tests); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tests.RuleFiles, []string{"rules.yaml"}) {
		t.Errorf("rule_files %v, want [rules.yaml] (the PrometheusRule's spec)", tests.RuleFiles)
	}
	firing, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, c := range tc.Cases {
			if len(c.ExpAlerts) > 0 {
				firing[c.Alertname] = true
			} else {
				silent[c.Alertname] = true
			}
		}
	}
	for _, r := range rules {
		if r.Alert == "" {
			continue
		}
		if !firing[r.Alert] {
			t.Errorf("alert %s: no promtool test where it fires (monitoring/prometheusrule_test.yaml)", r.Alert)
		}
		if !silent[r.Alert] {
			t.Errorf("alert %s: no promtool test where it stays silent (monitoring/prometheusrule_test.yaml)", r.Alert)
		}
	}
}

func TestExpandGrafana(t *testing.T) {
	vars := map[string]string{"node": ".*", "__rate_interval": "4s", "__interval": "1s"}
	tests := []struct {
		in, want, err string
	}{
		{`rate(m{node=~"$node"}[$__rate_interval])`, `rate(m{node=~".*"}[4s])`, ""},
		{`m{node=~"${node}"}[${__interval}]`, `m{node=~".*"}[1s]`, ""},
		{`m{node=~"${node:regex}"}`, `m{node=~".*"}`, ""},
		{`label_replace(m, "a", "$1", "b", "(.*)")`, `label_replace(m, "a", "$1", "b", "(.*)")`, ""},
		{`m{x="$cluster"}`, "", "$cluster"},
		{`m{x="${node"`, "", "unterminated"},
		{`sum(m) > $`, `sum(m) > $`, ""},
	}
	for _, tc := range tests {
		got, err := ExpandGrafana(tc.in, vars)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ExpandGrafana(%q) = %q, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ExpandGrafana(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestLabelValues(t *testing.T) {
	tests := []struct {
		in, selector, label string
		ok                  bool
	}{
		{`label_values(up{job=~"a|b"}, node)`, `up{job=~"a|b"}`, "node", true},
		{`label_values(m{l="x,y"}, instance)`, `m{l="x,y"}`, "instance", true},
		{`label_values(node)`, "", "node", true},
		{`query_result(up)`, "", "", false},
	}
	for _, tc := range tests {
		sel, label, ok := LabelValues(tc.in)
		if sel != tc.selector || label != tc.label || ok != tc.ok {
			t.Errorf("LabelValues(%q) = %q, %q, %v", tc.in, sel, label, ok)
		}
	}
}
