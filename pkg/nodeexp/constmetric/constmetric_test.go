package constmetric

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

func TestWrite(t *testing.T) {
	desc := prometheus.NewDesc("x", "help", []string{"a"}, nil)
	pairs := []*dto.LabelPair{{Name: proto.String("a"), Value: proto.String("1")}}
	tests := []struct {
		typ  prometheus.ValueType
		want func(*dto.Metric) *float64
	}{
		{prometheus.CounterValue, func(m *dto.Metric) *float64 { return m.GetCounter().Value }},
		{prometheus.GaugeValue, func(m *dto.Metric) *float64 { return m.GetGauge().Value }},
		{prometheus.UntypedValue, func(m *dto.Metric) *float64 { return m.GetUntyped().Value }},
	}
	for _, tt := range tests {
		m := New(desc, tt.typ, 2.5, pairs)
		var out dto.Metric
		if err := m.Write(&out); err != nil {
			t.Fatal(err)
		}
		if v := tt.want(&out); v == nil || *v != 2.5 {
			t.Errorf("type %v: value = %v, want 2.5", tt.typ, v)
		}
		if len(out.Label) != 1 || out.Label[0] != pairs[0] {
			t.Errorf("type %v: labels = %v, want the shared pairs", tt.typ, out.Label)
		}
		if typ, v, p := m.Sample(); typ != tt.typ || v != 2.5 || &p[0] != &pairs[0] {
			t.Errorf("Sample() = %v %v %v", typ, v, p)
		}
		if m.Desc() != desc {
			t.Errorf("Desc() = %v", m.Desc())
		}
	}
}
