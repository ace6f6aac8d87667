package constmetric

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func write(t *testing.T, m prometheus.Metric) (*dto.Metric, error) {
	t.Helper()
	var d dto.Metric
	return &d, m.Write(&d)
}

// TestMatchesNewConstMetric: a metric built from a Desc writes what
// prometheus.NewConstMetric writes for the same descriptor and values, and
// fails where it fails.
func TestMatchesNewConstMetric(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels []string
		consts prometheus.Labels
		values []string
		typ    prometheus.ValueType
		ok     bool
	}{
		{"no labels", nil, nil, nil, prometheus.GaugeValue, true},
		{"unsorted labels", []string{"zone", "device", "b"}, nil, []string{"z", "eth0", "x"}, prometheus.CounterValue, true},
		{"constant labels among them", []string{"mode", "cpu"}, prometheus.Labels{"node": "a", "aa": "first"}, []string{"idle", "0"}, prometheus.UntypedValue, true},
		{"too few values", []string{"a", "b"}, nil, []string{"x"}, prometheus.GaugeValue, false},
		{"invalid UTF-8", []string{"a"}, nil, []string{"\xff"}, prometheus.GaugeValue, false},
		{"label both constant and variable", []string{"a"}, prometheus.Labels{"a": "1"}, []string{"x"}, prometheus.GaugeValue, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDesc("node_x", "Help.", tc.labels, tc.consts)
			got, gotErr := write(t, d.MustNew(tc.typ, 2.5, tc.values...))
			ref, refErr := prometheus.NewConstMetric(prometheus.NewDesc("node_x", "Help.", tc.labels, tc.consts), tc.typ, 2.5, tc.values...)
			if (gotErr == nil) != tc.ok || (refErr == nil) != tc.ok {
				t.Fatalf("errors: %v (NewConstMetric: %v), want ok=%v", gotErr, refErr, tc.ok)
			}
			if !tc.ok {
				return
			}
			want, err := write(t, ref)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Errorf("wrote %v, NewConstMetric %v", got, want)
			}
		})
	}
}

func TestDescCarriesNameAndHelp(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels []string
		plain  bool
	}{
		{"node_load1", nil, true},
		{"node_x", []string{"device"}, true},
		{"node.dotted", nil, false},
		{"node_x", []string{"dotted.label"}, false},
		{"node_x", []string{"dup", "dup"}, false}, // invalid: never plain
	} {
		d := NewDesc(tc.name, "Help \\ text\n.", tc.labels, nil)
		if d.Name() != tc.name || d.Help() != "Help \\ text\n." {
			t.Errorf("%s: Name, Help = %q, %q", tc.name, d.Name(), d.Help())
		}
		if d.Plain() != tc.plain {
			t.Errorf("%s %v: Plain() = %v, want %v", tc.name, tc.labels, d.Plain(), tc.plain)
		}
	}
}

func TestWriteSharesPairs(t *testing.T) {
	desc := NewDesc("x", "help", []string{"a"}, nil)
	pairs, err := desc.Pairs("1")
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []prometheus.ValueType{prometheus.CounterValue, prometheus.GaugeValue, prometheus.UntypedValue} {
		m := New(desc, typ, 2.5, pairs)
		out, err := write(t, &m)
		if err != nil {
			t.Fatal(err)
		}
		v := out.GetCounter().GetValue() + out.GetGauge().GetValue() + out.GetUntyped().GetValue()
		if v != 2.5 {
			t.Errorf("type %v: value = %v, want 2.5", typ, v)
		}
		if len(out.Label) != 1 || out.Label[0] != pairs[0] {
			t.Errorf("type %v: labels = %v, want the shared pairs", typ, out.Label)
		}
		if gt, gv, gp := m.Sample(); gt != typ || gv != 2.5 || &gp[0] != &pairs[0] {
			t.Errorf("Sample() = %v %v %v", gt, gv, gp)
		}
		if m.Desc() != desc.Desc() || m.Family() != desc {
			t.Errorf("Desc() = %v, Family() = %v", m.Desc(), m.Family())
		}
	}
}
