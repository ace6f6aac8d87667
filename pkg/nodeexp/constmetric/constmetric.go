// Package constmetric is nodeexp's constant metric: one sample whose label
// pairs are built once and shared, across the series of a pod or across
// scrapes. prometheus.NewConstMetric validates, sorts and allocates the pairs
// anew for every series of every scrape, which was two fifths of a scrape's
// allocations.
package constmetric

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Metric is a prometheus.Metric with pre-built label pairs. Build it with New
// (slabs of them make one allocation for many series); it is read-only once
// handed to a registry or the exposition writer.
type Metric struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	val   float64
	pairs []*dto.LabelPair
}

// New returns a metric of desc with value v. pairs must be valid UTF-8,
// sorted by name as Write requires, and never modified afterwards.
func New(desc *prometheus.Desc, t prometheus.ValueType, v float64, pairs []*dto.LabelPair) Metric {
	return Metric{desc: desc, typ: t, val: v, pairs: pairs}
}

// Desc implements prometheus.Metric.
func (m *Metric) Desc() *prometheus.Desc { return m.desc }

// Write implements prometheus.Metric; the label pairs are shared, not copied.
func (m *Metric) Write(out *dto.Metric) error {
	out.Label = m.pairs
	switch m.typ {
	case prometheus.CounterValue:
		out.Counter = &dto.Counter{Value: &m.val}
	case prometheus.GaugeValue:
		out.Gauge = &dto.Gauge{Value: &m.val}
	default:
		out.Untyped = &dto.Untyped{Value: &m.val}
	}
	return nil
}

// Sample returns the metric's type, value and label pairs, for writers of
// the exposition that skip dto.Metric.
func (m *Metric) Sample() (prometheus.ValueType, float64, []*dto.LabelPair) {
	return m.typ, m.val, m.pairs
}
