// Package constmetric is nodeexp's constant metric: one sample whose label
// pairs are built once and shared, across the series of a pod or across
// scrapes, and whose descriptor carries its family's name and help.
//
// prometheus.NewConstMetric validates, sorts and allocates the pairs anew
// for every series of every scrape, which was two fifths of a scrape's
// allocations; and prometheus.Desc shows its name and help only through its
// String method, which the text writer had to parse.
package constmetric

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
)

// Desc describes one family of constant metrics: the prometheus.Desc a
// registry checks, with the name, help and label names beside it. It is
// immutable and safe for concurrent use.
type Desc struct {
	desc *prometheus.Desc
	name string
	help string
	n    int // number of variable labels
	// slots orders the label pairs by name, as Write must: a slot is the
	// index of a variable label's value, or -1-i for constant pair i.
	slots  []int
	names  []*string // label name of each slot, shared by every pair
	consts []*dto.LabelPair
	// layout identifies slots, names and consts: descriptors with the
	// same layout build the same pairs from the same values, so their
	// series may share them. Empty for an invalid descriptor.
	layout string
	// plain is set when the text format needs no quoting for the name
	// and the label names (Prometheus' legacy character set).
	plain bool
	err   error // why the descriptor is invalid, if it is
}

// NewDesc returns the descriptor of a family; like prometheus.NewDesc it
// never fails, and an invalid descriptor (bad name, duplicate label) makes
// every metric of it invalid.
func NewDesc(name, help string, labels []string, constLabels prometheus.Labels) *Desc {
	pd := prometheus.NewDesc(name, help, labels, constLabels)
	d := &Desc{desc: pd, name: name, help: help, n: len(labels)}
	// The registry's own verdict on the descriptor: NewConstMetric
	// returns the error NewDesc recorded, if any.
	if _, err := prometheus.NewConstMetric(pd, prometheus.UntypedValue, 0, make([]string, len(labels))...); err != nil {
		d.err = err
		return d
	}
	type slot struct {
		name string
		idx  int
	}
	slots := make([]slot, 0, len(labels)+len(constLabels))
	for i, l := range labels {
		slots = append(slots, slot{l, i})
	}
	for n := range constLabels {
		slots = append(slots, slot{n, -1})
	}
	slices.SortFunc(slots, func(a, b slot) int { return strings.Compare(a.name, b.name) })
	d.plain = model.LegacyValidation.IsValidMetricName(name)
	var layout strings.Builder
	for _, s := range slots {
		n := s.name
		d.names = append(d.names, &n)
		d.plain = d.plain && model.LegacyValidation.IsValidLabelName(n)
		if s.idx < 0 { // NewDesc refused a constant label that is also variable
			d.slots = append(d.slots, -1-len(d.consts))
			d.consts = append(d.consts, &dto.LabelPair{Name: &n, Value: proto.String(constLabels[n])})
			fmt.Fprintf(&layout, "c%q=%q,", n, constLabels[n])
			continue
		}
		d.slots = append(d.slots, s.idx)
		fmt.Fprintf(&layout, "v%d%q,", s.idx, n)
	}
	d.layout = "l:" + layout.String()
	return d
}

// Layout identifies the label layout of the family (its label names, in
// the order their values are given, and its constant labels): families
// with the same layout have the same pairs for the same values, which
// Pairs of either may return. It is empty for an invalid descriptor.
func (d *Desc) Layout() string { return d.layout }

// Desc returns the prometheus.Desc of the family.
func (d *Desc) Desc() *prometheus.Desc { return d.desc }

// Name returns the family's name.
func (d *Desc) Name() string { return d.name }

// Help returns the family's help text.
func (d *Desc) Help() string { return d.help }

// Plain reports whether the family can be written in the text format
// without quoting its name or label names.
func (d *Desc) Plain() bool { return d.plain && d.err == nil }

// errLabelCount is returned for a number of label values that is not the
// number of variable labels.
var errLabelCount = errors.New("inconsistent label cardinality")

// Pairs returns the label pairs of the series with these values (one per
// variable label, in the order given to NewDesc), sorted by name as Write
// requires. Values that are not valid UTF-8 are an error, as in
// prometheus.NewConstMetric.
func (d *Desc) Pairs(values ...string) ([]*dto.LabelPair, error) {
	if d.err != nil {
		return nil, d.err
	}
	if len(values) != d.n {
		return nil, fmt.Errorf("%w: %d label values for %s, want %d", errLabelCount, len(values), d.name, d.n)
	}
	for _, v := range values {
		if !utf8.ValidString(v) {
			return nil, fmt.Errorf("label value %q of %s is not valid UTF-8", v, d.name)
		}
	}
	if len(d.slots) == 0 {
		return nil, nil
	}
	pairs := make([]*dto.LabelPair, len(d.slots))
	// One allocation for the variable pairs of the series and one for
	// their values, which the caller may reuse.
	vals := make([]dto.LabelPair, d.n)
	vs := slices.Clone(values)
	for i, s := range d.slots {
		if s < 0 {
			pairs[i] = d.consts[-1-s]
			continue
		}
		vals[s].Name, vals[s].Value = d.names[i], &vs[s]
		pairs[i] = &vals[s]
	}
	return pairs, nil
}

// MustNew returns a metric of d with these label values, or an invalid
// metric (which fails only its series) when they do not fit d.
func (d *Desc) MustNew(t prometheus.ValueType, v float64, values ...string) prometheus.Metric {
	pairs, err := d.Pairs(values...)
	if err != nil {
		return prometheus.NewInvalidMetric(d.desc, err)
	}
	return &Metric{desc: d, typ: t, val: v, pairs: pairs}
}

// Metric is a prometheus.Metric with pre-built label pairs. Build it with
// New (slabs of them make one allocation for many series); it is read-only
// once handed to a registry or the exposition writer.
type Metric struct {
	desc  *Desc
	typ   prometheus.ValueType
	val   float64
	pairs []*dto.LabelPair
}

// New returns a metric of desc with value v. pairs must come from
// desc.Pairs (or be built the same way: valid UTF-8, sorted by name) and
// never be modified afterwards.
func New(desc *Desc, t prometheus.ValueType, v float64, pairs []*dto.LabelPair) Metric {
	return Metric{desc: desc, typ: t, val: v, pairs: pairs}
}

// Desc implements prometheus.Metric.
func (m *Metric) Desc() *prometheus.Desc { return m.desc.desc }

// Family returns the descriptor the metric was built with.
func (m *Metric) Family() *Desc { return m.desc }

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
