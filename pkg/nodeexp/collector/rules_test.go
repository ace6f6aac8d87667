package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// nodeMixinRules returns the node-mixin's rendered rules: the copy in
// testdata, or $NODE_MIXIN_RULES.
func nodeMixinRules(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("NODE_MIXIN_RULES"); p != "" {
		return p
	}
	p, err := filepath.Abs(filepath.Join("testdata", "node-mixin-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPromtoolNodeMixinRules evaluates the node-mixin's recording rules with
// `promtool test rules` over the fixture exposition (as Prometheus would
// scrape it with job="node-exporter") and fails for every recorded series
// that comes out empty, i.e. whose inputs nodeexp does not provide.
func TestPromtoolNodeMixinRules(t *testing.T) {
	bin := promtoolBinary(t)
	rules := nodeMixinRules(t)
	rb, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	var records []string
	for _, m := range regexp.MustCompile(`(?m)^\s*(?:- )?record:\s*(\S+)\s*$`).FindAllStringSubmatch(string(rb), -1) {
		if !slices.Contains(records, m[1]) {
			records = append(records, m[1])
		}
	}
	if len(records) == 0 {
		t.Fatalf("no recording rules found in %s", rules)
	}
	mfs, err := newFixtureExporter(t, nil).Gatherer(context.Background()).Gather()
	if err != nil {
		t.Fatal(err)
	}
	type series struct {
		Series string `json:"series"`
		Values string `json:"values"`
	}
	var input []series
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "node_") {
			continue
		}
		for _, m := range mf.Metric {
			input = append(input, series{Series: selector(mf.GetName(), m), Values: values(mf.GetType(), m)})
		}
	}
	type exprTest struct {
		Expr       string `json:"expr"`
		EvalTime   string `json:"eval_time"`
		ExpSamples []any  `json:"exp_samples"`
	}
	var tests []exprTest
	for _, r := range records {
		// absent() is empty exactly when the recorded series exists.
		tests = append(tests, exprTest{Expr: "absent(" + r + ")", EvalTime: "9m", ExpSamples: []any{}})
	}
	file := map[string]any{
		"rule_files":          []string{rules},
		"evaluation_interval": "15s",
		"tests": []any{map[string]any{
			"interval":         "15s",
			"input_series":     input,
			"promql_expr_test": tests,
		}},
	}
	b, err := json.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "node-mixin-test.json") // JSON is YAML
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "test", "rules", path).CombinedOutput()
	if err != nil {
		t.Errorf("promtool test rules over nodeexp's output failed (%v):\n%s", err, out)
	}
	t.Logf("checked %d recording rules over %d series", len(records), len(input))
}

// selector renders a series as promtool's input_series expects, with the
// target labels Prometheus would add.
func selector(name string, m *dto.Metric) string {
	parts := []string{`job="node-exporter"`, `instance="node-a:9100"`}
	for _, l := range m.Label {
		parts = append(parts, l.GetName()+"="+strconv.Quote(l.GetValue()))
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// values is ten minutes of samples: counters grow, gauges stay put.
func values(t dto.MetricType, m *dto.Metric) string {
	v := m.GetGauge().GetValue() + m.GetCounter().GetValue() + m.GetUntyped().GetValue()
	if math.IsNaN(v) || math.IsInf(v, 0) {
		v = 0
	}
	if t == dto.MetricType_COUNTER {
		return fmt.Sprintf("%s+10x40", strconv.FormatFloat(v, 'f', -1, 64))
	}
	return fmt.Sprintf("%sx40", strconv.FormatFloat(v, 'f', -1, 64))
}
