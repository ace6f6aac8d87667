package nodeexp

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestSeriesCache checks that cached series write what NewConstMetric
// writes, that invalid label values still fail only their series and are
// not cached, and that the cache stays bounded.
func TestSeriesCache(t *testing.T) {
	desc := prometheus.NewDesc("node_x", "x", []string{"zone", "device"}, nil)
	var s seriesCache
	write := func(m prometheus.Metric) (*dto.Metric, error) {
		var d dto.Metric
		return &d, m.Write(&d)
	}
	for i, tc := range []struct {
		values []string
		typ    prometheus.ValueType
		v      float64
	}{
		{[]string{"a", "eth0"}, prometheus.CounterValue, 1},
		{[]string{"a", "eth0"}, prometheus.CounterValue, 2}, // hit
		{[]string{"b", "eth0"}, prometheus.GaugeValue, 3},
		{[]string{"a", "eth0"}, prometheus.UntypedValue, 4}, // hit, another type
	} {
		ch := make(chan prometheus.Metric, 1)
		s.send(ch, desc, tc.typ, tc.v, tc.values...)
		got, err := write(<-ch)
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		want, err := write(prometheus.MustNewConstMetric(desc, tc.typ, tc.v, tc.values...))
		if err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("%d: cached series wrote %v, NewConstMetric %v", i, got, want)
		}
	}
	if s.n != 2 {
		t.Errorf("cache holds %d series, want 2", s.n)
	}
	ch := make(chan prometheus.Metric, 1)
	s.send(ch, desc, prometheus.GaugeValue, 1, "a", "\xff")
	if _, err := write(<-ch); err == nil {
		t.Error("invalid UTF-8 label value: no error")
	}
	if s.n != 2 {
		t.Errorf("an invalid series was cached")
	}
	for i := range maxCachedSeries + 10 {
		s.send(ch, desc, prometheus.GaugeValue, 1, "z", fmt.Sprint(i))
		<-ch
	}
	if s.n > maxCachedSeries {
		t.Errorf("cache holds %d series, more than %d", s.n, maxCachedSeries)
	}
}
