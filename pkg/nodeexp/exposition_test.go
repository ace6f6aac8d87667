package nodeexp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// registryText is what promhttp serves for these metrics and self's
// families: a Registry's Gather, merged, encoded by expfmt as negotiated
// for Prometheus' text Accept header.
func registryText(t *testing.T, metrics []prometheus.Metric, self []*dto.MetricFamily) string {
	t.Helper()
	s, err := registryTextOf(metrics, self)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func registryTextOf(metrics []prometheus.Metric, self []*dto.MetricFamily) (string, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(replay(metrics)); err != nil {
		return "", err
	}
	mfs, err := mergedGatherer{reg, gathered(self)}.Gather()
	if err != nil {
		return "", fmt.Errorf("registry: %w", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.Negotiate(http.Header{"Accept": {"text/plain;version=0.0.4;q=1,*/*;q=0.1"}}))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return "", err
		}
	}
	return buf.String(), nil
}

// TestTextWriterEdgeCases writes values and labels whose formatting is
// special, and checks the cases left to the registry.
func TestTextWriterEdgeCases(t *testing.T) {
	send := func(ch chan prometheus.Metric, d *constmetric.Desc, v float64, lv ...string) {
		ch <- d.MustNew(prometheus.GaugeValue, v, lv...)
	}
	lab := constmetric.NewDesc("node_edge", "Help with \\ and\nnewline.", []string{"b", "a"}, prometheus.Labels{"c": "const"})
	ctr := constmetric.NewDesc("node_edge_total", "", nil, nil)
	other := constmetric.NewDesc("node_edge", "Other help.", []string{"b", "a"}, nil)
	hist := prometheus.MustNewConstHistogram(prometheus.NewDesc("node_h", "h", nil, nil), 1, 1, map[float64]uint64{1: 1})
	collect := func(f func(ch chan prometheus.Metric)) []prometheus.Metric {
		ch := make(chan prometheus.Metric, 100)
		f(ch)
		close(ch)
		var out []prometheus.Metric
		for m := range ch {
			out = append(out, m)
		}
		return out
	}
	plain := collect(func(ch chan prometheus.Metric) {
		for i, v := range []float64{0, 1, -1, 0.5, 1e21, -2.5e-7, 12345678901234567890} {
			send(ch, lab, v, string(rune('a'+i)), `q"uo\te`+"\n")
		}
		send(ch, lab, negInf(), "z", "")
		ch <- ctr.MustNew(prometheus.CounterValue, posInf())
		ch <- constmetric.NewDesc("node_nan", "n", nil, nil).MustNew(prometheus.UntypedValue, nan())
	})
	fams, err := textFamilies(plain)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := writeText(bufio.NewWriter(&got), fams, nil); err != nil {
		t.Fatal(err)
	}
	if want := registryText(t, plain, nil); got.String() != want {
		t.Errorf("got\n%s\nwant\n%s", got.String(), want)
	}

	for _, tc := range []struct {
		name, reason string
		metrics      []prometheus.Metric
	}{
		{"histogram", reasonForeign, []prometheus.Metric{hist}},
		{"invalid metric", reasonForeign, []prometheus.Metric{prometheus.NewInvalidMetric(lab.Desc(), errors.New("broken"))}},
		{"client_golang constant metric", reasonForeign, []prometheus.Metric{prometheus.MustNewConstMetric(prometheus.NewDesc("node_c", "c", nil, nil), prometheus.GaugeValue, 1)}},
		{"same series twice", reasonDuplicate, collect(func(ch chan prometheus.Metric) { send(ch, lab, 1, "x", "y"); send(ch, lab, 2, "x", "y") })},
		{"one name, two helps", reasonConflict, collect(func(ch chan prometheus.Metric) {
			send(ch, lab, 1, "x", "y")
			send(ch, other, 1, "x", "z")
		})},
		{"one name, two types", reasonConflict, collect(func(ch chan prometheus.Metric) {
			send(ch, lab, 1, "x", "y")
			ch <- lab.MustNew(prometheus.CounterValue, 1, "x", "z")
		})},
		{"utf-8 metric name", reasonQuoted, []prometheus.Metric{constmetric.NewDesc("node.dotted", "d", nil, nil).MustNew(prometheus.GaugeValue, 1)}},
	} {
		_, err := textFamilies(tc.metrics)
		var np *notPlainError
		if !errors.As(err, &np) || np.reason != tc.reason {
			t.Errorf("%s: textFamilies error %v, want one for reason %s", tc.name, err, tc.reason)
		}
	}
}

// TestFallbacksCounted: a scrape the text writer leaves to the registry is
// still served, and counted by reason in the exporter's own metrics.
func TestFallbacksCounted(t *testing.T) {
	hist := prometheus.MustNewConstHistogram(prometheus.NewDesc("node_h", "h", nil, nil), 1, 1, map[float64]uint64{1: 1})
	reg := prometheus.NewRegistry()
	e := newExporter(t, map[string]Collector{"textfile": fixedCollector{hist, gauge("node_g", "g", 1)}}, reg)
	srv := httptest.NewServer(e.Handler(reg, nil))
	defer srv.Close()
	for range 2 {
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{"node_h_bucket{le=\"1\"} 1", "node_g 1", `nodeexp_exposition_fallbacks_total{reason="foreign_metric"}`} {
			if !strings.Contains(string(body), want) {
				t.Errorf("response lacks %q:\n%s", want, body)
			}
		}
	}
	want := `
# HELP nodeexp_exposition_fallbacks_total Scrapes whose text exposition was written by a prometheus.Registry (slower) instead of nodeexp's text writer, by reason.
# TYPE nodeexp_exposition_fallbacks_total counter
nodeexp_exposition_fallbacks_total{reason="duplicate_series"} 0
nodeexp_exposition_fallbacks_total{reason="family_conflict"} 0
nodeexp_exposition_fallbacks_total{reason="foreign_metric"} 2
nodeexp_exposition_fallbacks_total{reason="quoted_name"} 0
nodeexp_exposition_fallbacks_total{reason="self_gather_error"} 0
nodeexp_exposition_fallbacks_total{reason="self_name_clash"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "nodeexp_exposition_fallbacks_total"); err != nil {
		t.Error(err)
	}
}

func posInf() float64 { return math.Inf(1) }
func negInf() float64 { return math.Inf(-1) }
func nan() float64    { return math.NaN() }
