package nodeexp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"math"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// registryText is what promhttp serves for these metrics and self's
// families: a Registry's Gather, merged, encoded by expfmt as negotiated
// for Prometheus' text Accept header.
func registryText(t *testing.T, metrics []prometheus.Metric, self []*dto.MetricFamily) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(replay(metrics))
	mfs, err := mergedGatherer{reg, gathered(self)}.Gather()
	if err != nil {
		t.Fatalf("registry: %v", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.Negotiate(http.Header{"Accept": {"text/plain;version=0.0.4;q=1,*/*;q=0.1"}}))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.String()
}

func selfFamilies(t *testing.T) []*dto.MetricFamily {
	t.Helper()
	self := prometheus.NewRegistry()
	self.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGauge(prometheus.GaugeOpts{Name: "nodeexp_self", Help: "Quote \" backslash \\ newline \n."}))
	mfs, err := self.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// TestTextWriterMatchesExpfmt compares the text writer with the registry
// and expfmt, byte for byte, on the fixture scrape (pods included) and on
// a scrape of this machine, each merged with the Go and process metrics.
func TestTextWriterMatchesExpfmt(t *testing.T) {
	live, err := NewExporter(DefaultConfig(), discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { live.Close() })
	self := selfFamilies(t)
	for name, e := range map[string]*Exporter{"fixtures": newFixtureExporter(t), "this machine": live} {
		t.Run(name, func(t *testing.T) {
			metrics := e.collect(context.Background())
			fams, err := textFamilies(metrics, &e.descs)
			if err != nil {
				t.Fatalf("textFamilies: %v", err)
			}
			var got bytes.Buffer
			if err := writeText(bufio.NewWriter(&got), fams, self); err != nil {
				t.Fatal(err)
			}
			want := registryText(t, metrics, self)
			if got.String() != want {
				t.Errorf("text writer and expfmt differ; first difference at byte %d:\n got: %q\nwant: %q",
					firstDiff(got.String(), want), around(got.String(), firstDiff(got.String(), want)), around(want, firstDiff(got.String(), want)))
			}
		})
	}
}

func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func around(s string, i int) string { return s[max(0, i-80):min(len(s), i+80)] }

// TestTextWriterEdgeCases writes values and labels whose formatting is
// special, and checks the cases left to the registry.
func TestTextWriterEdgeCases(t *testing.T) {
	var s seriesCache
	send := func(ch chan prometheus.Metric, d *prometheus.Desc, v float64, lv ...string) {
		s.send(ch, d, prometheus.GaugeValue, v, lv...)
	}
	lab := prometheus.NewDesc("node_edge", "Help with \\ and\nnewline.", []string{"b", "a"}, prometheus.Labels{"c": "const"})
	ctr := prometheus.NewDesc("node_edge_total", "", nil, nil)
	other := prometheus.NewDesc("node_edge", "Other help.", []string{"b", "a"}, nil)
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
		ch <- prometheus.MustNewConstMetric(ctr, prometheus.CounterValue, posInf())
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc("node_nan", "n", nil, nil), prometheus.UntypedValue, nan())
	})
	var infos descInfos
	fams, err := textFamilies(plain, &infos)
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

	for name, ms := range map[string][]prometheus.Metric{
		"histogram":         {hist},
		"invalid metric":    {prometheus.NewInvalidMetric(lab, errors.New("broken"))},
		"same series twice": collect(func(ch chan prometheus.Metric) { send(ch, lab, 1, "x", "y"); send(ch, lab, 2, "x", "y") }),
		"one name, two helps": collect(func(ch chan prometheus.Metric) {
			send(ch, lab, 1, "x", "y")
			ch <- prometheus.MustNewConstMetric(other, prometheus.GaugeValue, 1, "x", "z")
		}),
		"utf-8 metric name": {prometheus.MustNewConstMetric(prometheus.NewDesc("node.dotted", "d", nil, nil), prometheus.GaugeValue, 1)},
	} {
		if _, err := textFamilies(ms, &infos); !errors.Is(err, errNotPlain) {
			t.Errorf("%s: textFamilies error %v, want errNotPlain", name, err)
		}
	}
}

func posInf() float64 { return math.Inf(1) }
func negInf() float64 { return math.Inf(-1) }
func nan() float64    { return math.NaN() }
