package deploy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Rule is one alerting or recording rule of a PrometheusRule.
type Rule struct {
	Group  string
	Alert  string
	Record string
	Expr   string
	For    string
	Labels map[string]string
	// Annotations of an alert: summary, description, runbook.
	Annotations map[string]string
}

// PrometheusRule is the part of a monitoring.coreos.com/v1 PrometheusRule
// the tests read: its spec is exactly a Prometheus rules file.
type PrometheusRule struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec RulesFile `json:"spec"`
}

// RulesFile is Prometheus' rule file format.
type RulesFile struct {
	Groups []RuleGroup `json:"groups"`
}

// RuleGroup is a named group of rules.
type RuleGroup struct {
	Name     string     `json:"name"`
	Interval string     `json:"interval,omitempty"`
	Rules    []RuleSpec `json:"rules"`
}

// RuleSpec is one rule as written in a rules file.
type RuleSpec struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// ParsePrometheusRule decodes a PrometheusRule, refusing unknown fields.
func ParsePrometheusRule(data []byte) (*PrometheusRule, []Rule, error) {
	var pr PrometheusRule
	if err := yaml.UnmarshalStrict(data, &pr); err != nil {
		return nil, nil, fmt.Errorf("decoding PrometheusRule: %w", err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" {
		return nil, nil, fmt.Errorf("decoding PrometheusRule: got %s %s", pr.APIVersion, pr.Kind)
	}
	var rules []Rule
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			rules = append(rules, Rule{Group: g.Name, Alert: r.Alert, Record: r.Record, Expr: r.Expr, For: r.For, Labels: r.Labels, Annotations: r.Annotations})
		}
	}
	return &pr, rules, nil
}

// DashboardQuery is one PromQL target of a Grafana panel.
type DashboardQuery struct {
	Panel string
	Expr  string
}

// Dashboard is the part of a Grafana dashboard model the tests read.
type Dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []Panel `json:"panels"`
	Templating struct {
		List []Variable `json:"list"`
	} `json:"templating"`
}

// Variable is a Grafana template variable.
type Variable struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Query      any    `json:"query"`
	Multi      bool   `json:"multi"`
	IncludeAll bool   `json:"includeAll"`
	AllValue   string `json:"allValue"`
}

// QueryString is the PromQL (or label_values(...)) text of a query
// variable, written either as a string or as {"query": ...}.
func (v Variable) QueryString() string {
	switch x := v.Query.(type) {
	case string:
		return x
	case map[string]any:
		q, _ := x["query"].(string)
		return q
	}
	return ""
}

// LabelValues splits Grafana's label_values(selector, label) into its two
// arguments; ok is false for any other query.
func LabelValues(q string) (selector, label string, ok bool) {
	inner, ok := strings.CutPrefix(strings.TrimSpace(q), "label_values(")
	if !ok || !strings.HasSuffix(inner, ")") {
		return "", "", false
	}
	inner = strings.TrimSuffix(inner, ")")
	i := strings.LastIndexByte(inner, ',')
	if i < 0 {
		return "", strings.TrimSpace(inner), true
	}
	return strings.TrimSpace(inner[:i]), strings.TrimSpace(inner[i+1:]), true
}

// ExpandGrafana substitutes Grafana's template variables in expr ($name,
// ${name} and ${name:format}) with vars' values, as Grafana does before it
// sends a query. A variable vars does not hold is an error.
func ExpandGrafana(expr string, vars map[string]string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(expr); i++ {
		if expr[i] != '$' {
			b.WriteByte(expr[i])
			continue
		}
		j := i + 1
		var name string
		if j < len(expr) && expr[j] == '{' {
			end := strings.IndexByte(expr[j:], '}')
			if end < 0 {
				return "", fmt.Errorf("unterminated ${ at offset %d of %q", i, expr)
			}
			name, _, _ = strings.Cut(expr[j+1:j+end], ":")
			j += end + 1
		} else {
			for j < len(expr) && isIdentChar(expr[j]) {
				j++
			}
			name = expr[i+1 : j]
		}
		if name == "" || name[0] >= '0' && name[0] <= '9' {
			// Not a variable: a lone $, or a regex group in label_replace.
			b.WriteString(expr[i:j])
			i = j - 1
			continue
		}
		v, ok := vars[name]
		if !ok {
			return "", fmt.Errorf("variable $%s of %q has no value", name, expr)
		}
		b.WriteString(v)
		i = j - 1
	}
	return b.String(), nil
}

// Panel is a Grafana panel; rows nest panels.
type Panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []Panel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// ParseDashboard decodes a Grafana dashboard and returns every PromQL
// expression of its panels (rows included) and of its query variables.
func ParseDashboard(data []byte) (*Dashboard, []DashboardQuery, error) {
	var d Dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, nil, fmt.Errorf("decoding Grafana dashboard: %w", err)
	}
	var qs []DashboardQuery
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				if t.Expr != "" {
					qs = append(qs, DashboardQuery{Panel: p.Title, Expr: t.Expr})
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		// label_values(metric, label) names a metric too.
		if selector, _, ok := LabelValues(v.QueryString()); ok && selector != "" {
			qs = append(qs, DashboardQuery{Panel: "variable " + v.Name, Expr: selector})
		}
	}
	return &d, qs, nil
}

// GrafanaVariables replaces Grafana's template variables in expr with values
// PromQL accepts, so that promtool can check the expression.
func GrafanaVariables(expr string) string {
	r := strings.NewReplacer(
		"$__rate_interval", "5m", "${__rate_interval}", "5m",
		"$__interval", "1m", "${__interval}", "1m",
		"$__range", "1h", "${__range}", "1h",
	)
	expr = r.Replace(expr)
	// Remaining variables stand inside label matchers: any string will do.
	var b strings.Builder
	for i := 0; i < len(expr); i++ {
		if expr[i] != '$' {
			b.WriteByte(expr[i])
			continue
		}
		j := i + 1
		if j < len(expr) && expr[j] == '{' {
			end := strings.IndexByte(expr[j:], '}')
			if end < 0 {
				b.WriteString(expr[i:])
				break
			}
			j += end + 1
		} else {
			for j < len(expr) && isIdentChar(expr[j]) {
				j++
			}
		}
		b.WriteString("x")
		i = j - 1
	}
	return b.String()
}

// isKeyword reports PromQL's keywords, aggregation operators and literals:
// identifiers that are never metric names.
func isKeyword(lw string) bool {
	switch lw {
	case "and", "or", "unless", "bool", "offset", "inf", "nan", "atan2", "start", "end",
		"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
		"count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio":
		return true
	}
	return false
}

// MetricNames returns the metric names a PromQL expression selects, sorted
// and without duplicates. It is a lexer, not a parser: it skips strings,
// label matchers ({...}), ranges ([...]), grouping label lists (by (...)),
// numbers, durations, Grafana variables, function calls and keywords, and
// reports every other identifier. Syntax is promtool's job.
func MetricNames(expr string) []string {
	metrics, _ := Refs(expr)
	return metrics
}

// Refs returns the metric names (as MetricNames) and the label names an
// expression mentions: in matchers ({name="..."}) and in grouping lists
// (by, without, on, ignoring, group_left, group_right). Both sorted, without
// duplicates.
func Refs(expr string) (metrics, labels []string) {
	add := func(list *[]string, s string) {
		if !slices.Contains(*list, s) {
			*list = append(*list, s)
		}
	}
	grouping := false // the next (...) lists labels
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(expr, i)
		case c == '{':
			end := skipTo(expr, i, '}')
			for _, l := range matcherLabels(expr[i+1 : max(end-1, i+1)]) {
				add(&labels, l)
			}
			i = end
		case c == '[':
			i = skipTo(expr, i, ']')
		case c == '(' && grouping:
			end := skipTo(expr, i, ')')
			for l := range strings.SplitSeq(expr[i+1:max(end-1, i+1)], ",") {
				if l = strings.TrimSpace(l); l != "" {
					add(&labels, l)
				}
			}
			i = end
			grouping = false
		case c == '$':
			i++
			if i < len(expr) && expr[i] == '{' {
				i = skipTo(expr, i, '}')
			}
			for i < len(expr) && isIdentChar(expr[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdentChar(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdentChar(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && (expr[k] == ' ' || expr[k] == '\t' || expr[k] == '\n') {
				k++
			}
			call := k < len(expr) && expr[k] == '('
			switch lw := strings.ToLower(word); {
			case lw == "by" || lw == "without" || lw == "on" || lw == "ignoring" || lw == "group_left" || lw == "group_right":
				grouping = true
			case isKeyword(lw) || call:
			default:
				add(&metrics, word)
			}
			i = j
		default:
			i++
		}
	}
	slices.Sort(metrics)
	slices.Sort(labels)
	return metrics, labels
}

// matcherLabels returns the label names of the matchers inside {...}.
func matcherLabels(body string) []string {
	var out []string
	for i := 0; i < len(body); {
		switch c := body[i]; {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(body, i)
		case isIdentStart(c):
			j := i
			for j < len(body) && isIdentChar(body[j]) {
				j++
			}
			k := j
			for k < len(body) && body[k] == ' ' {
				k++
			}
			if k < len(body) && (body[k] == '=' || body[k] == '!') {
				out = append(out, body[i:j])
			}
			i = j
		default:
			i++
		}
	}
	return out
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdentChar(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// skipString returns the index after the string literal starting at i.
func skipString(s string, i int) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		if s[j] == '\\' && q != '`' {
			j++
			continue
		}
		if s[j] == q {
			return j + 1
		}
	}
	return len(s)
}

// skipTo returns the index after the close that ends the bracket at i,
// skipping string literals (label values may hold any character).
func skipTo(s string, i int, close byte) int {
	open := s[i]
	depth := 0
	for j := i; j < len(s); {
		switch s[j] {
		case '"', '\'', '`':
			j = skipString(s, j)
			continue
		case open:
			depth++
		case close:
			depth--
			if depth == 0 {
				return j + 1
			}
		}
		j++
	}
	return len(s)
}

// ServiceMonitor is the part of a monitoring.coreos.com/v1 ServiceMonitor
// nodekit uses; decoding is strict, so a field the test bed's translation
// into a Prometheus configuration would ignore is an error, not a silent gap.
type ServiceMonitor struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []ServiceMonitorEndpoint `json:"endpoints"`
	} `json:"spec"`
}

// ServiceMonitorEndpoint is one scraped port of a ServiceMonitor.
type ServiceMonitorEndpoint struct {
	Port          string          `json:"port"`
	Path          string          `json:"path,omitempty"`
	Interval      string          `json:"interval,omitempty"`
	ScrapeTimeout string          `json:"scrapeTimeout,omitempty"`
	HonorLabels   bool            `json:"honorLabels,omitempty"`
	Relabelings   []RelabelConfig `json:"relabelings,omitempty"`
}

// RelabelConfig is the Operator's spelling of a Prometheus relabel_config.
type RelabelConfig struct {
	SourceLabels []string `json:"sourceLabels,omitempty"`
	Separator    *string  `json:"separator,omitempty"`
	TargetLabel  string   `json:"targetLabel,omitempty"`
	Regex        string   `json:"regex,omitempty"`
	Modulus      uint64   `json:"modulus,omitempty"`
	Replacement  *string  `json:"replacement,omitempty"`
	Action       string   `json:"action,omitempty"`
}

// MonitoringService is the Service of servicemonitor.yaml: the ports the
// ServiceMonitor's endpoints name.
type MonitoringService struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		ClusterIP string            `json:"clusterIP"`
		Selector  map[string]string `json:"selector"`
		Ports     []struct {
			Name       string `json:"name"`
			Port       int    `json:"port"`
			TargetPort string `json:"targetPort"`
			Protocol   string `json:"protocol"`
		} `json:"ports"`
	} `json:"spec"`
}

// ParseServiceMonitor decodes servicemonitor.yaml: a Service, then the
// ServiceMonitor scraping its ports.
func ParseServiceMonitor(data []byte) (*MonitoringService, *ServiceMonitor, error) {
	docs, err := Documents(data)
	if err != nil {
		return nil, nil, err
	}
	if len(docs) != 2 {
		return nil, nil, fmt.Errorf("servicemonitor.yaml: %d documents, want a Service and a ServiceMonitor", len(docs))
	}
	var svc MonitoringService
	if err := yaml.UnmarshalStrict(docs[0], &svc); err != nil {
		return nil, nil, fmt.Errorf("decoding the Service: %w", err)
	}
	if svc.APIVersion != "v1" || svc.Kind != "Service" {
		return nil, nil, fmt.Errorf("first document is %s %s, want v1 Service", svc.APIVersion, svc.Kind)
	}
	var sm ServiceMonitor
	if err := yaml.UnmarshalStrict(docs[1], &sm); err != nil {
		return nil, nil, fmt.Errorf("decoding the ServiceMonitor: %w", err)
	}
	if sm.APIVersion != "monitoring.coreos.com/v1" || sm.Kind != "ServiceMonitor" {
		return nil, nil, fmt.Errorf("second document is %s %s, want monitoring.coreos.com/v1 ServiceMonitor", sm.APIVersion, sm.Kind)
	}
	return &svc, &sm, nil
}
