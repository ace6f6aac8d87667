package nodeexp

import (
	"bufio"
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// The text exposition of a scrape's own metrics is written here, not by a
// prometheus.Registry and expfmt: for series that are plain counters,
// gauges and untyped values with already validated labels (all of the
// node collectors'), the registry's per-metric dto.Metric, consistency
// hash and sort, then expfmt's escaping copy of every family, were half of
// a scrape's allocations and a fifth of its CPU. The output is byte for
// byte what Registry.Gather and expfmt write (TestTextWriterMatchesExpfmt
// compares them on the fixtures and on this machine).
//
// The writer takes each family's name and help from the metric's
// constmetric.Desc. Anything else in a scrape (a metric not built by
// package constmetric, such as a textfile's summary or an invalid metric; a
// family name two descriptors share with different help or type; a repeated
// series; a name that needs quoting) sends the whole scrape through
// prometheus.Registry and promhttp, so their checks and error reports are
// unchanged, and is counted in nodeexp_exposition_fallbacks_total by reason.

// textFamily is one family of a scrape, ready to be written.
type textFamily struct {
	name, help string
	typ        dto.MetricType
	samples    []textSample
	n          int // series counted before samples is filled
}

type textSample struct {
	pairs []*dto.LabelPair // sorted by name, as NewConstMetric leaves them
	val   float64
}

// Why a scrape was left to the registry: the label values of
// nodeexp_exposition_fallbacks_total.
const (
	// A metric not built by constmetric (a summary or histogram from a
	// textfile, an invalid metric): its name and help are unknown.
	reasonForeign = "foreign_metric"
	// One family name with two helps or two types.
	reasonConflict = "family_conflict"
	// The same series twice in a scrape.
	reasonDuplicate = "duplicate_series"
	// A metric or label name the text format must quote.
	reasonQuoted = "quoted_name"
	// A family of the scrape that the exporter's own metrics also have.
	reasonSelfClash = "self_name_clash"
	// Gathering the exporter's own metrics failed.
	reasonSelfError = "self_gather_error"
)

var fallbackReasons = []string{reasonForeign, reasonConflict, reasonDuplicate, reasonQuoted, reasonSelfClash, reasonSelfError}

// notPlainError tells the caller to write this scrape the registry's way,
// and why.
type notPlainError struct{ reason string }

func (e *notPlainError) Error() string {
	return "scrape holds metrics the text writer leaves to the registry: " + e.reason
}

func notPlain(reason string) error { return &notPlainError{reason: reason} }

// textFamilies groups a scrape's metrics into sorted families with sorted
// series, or returns a *notPlainError.
func textFamilies(metrics []prometheus.Metric) ([]*textFamily, error) {
	return new(textScratch).build(metrics)
}

// textScratch is the storage textFamilies works in, kept from one scrape
// to the next: built afresh for the thousand-odd series of a scrape it was
// a quarter of the scrape's allocation. The families build returns live in
// it until release.
//
// It holds a family per family, in slabs that never move (the families'
// pointers stay valid), a family pointer per series and the series
// themselves: sized by the series count alone, the families were three
// fifths of it, 300 KB kept between scrapes with 60 interfaces.
type textScratch struct {
	slabs  [][]textFamily
	of     []*textFamily // each metric's family
	byDesc map[*constmetric.Desc]*textFamily
	byName map[string]*textFamily
	fams   []*textFamily
	all    []textSample
}

// familySlab is the number of families a slab holds.
const familySlab = 64

// newFamily returns the next free family of the slabs, counting used.
func (sc *textScratch) newFamily(used *int) *textFamily {
	i, j := *used/familySlab, *used%familySlab
	if i == len(sc.slabs) {
		sc.slabs = append(sc.slabs, make([]textFamily, familySlab))
	}
	*used++
	return &sc.slabs[i][j]
}

// release drops the references to the last scrape's metrics, keeping the
// storage.
func (sc *textScratch) release() {
	for _, s := range sc.slabs {
		clear(s)
	}
	clear(sc.of)
	clear(sc.fams)
	clear(sc.all)
	clear(sc.byDesc)
	clear(sc.byName)
}

func (sc *textScratch) build(metrics []prometheus.Metric) ([]*textFamily, error) {
	if cap(sc.of) < len(metrics) {
		sc.of = make([]*textFamily, len(metrics))
		sc.all = make([]textSample, len(metrics))
	}
	if sc.byDesc == nil {
		sc.byDesc = make(map[*constmetric.Desc]*textFamily)
		sc.byName = make(map[string]*textFamily)
	}
	used, of, all := 0, sc.of[:len(metrics)], sc.all[:len(metrics)]
	byDesc, byName := sc.byDesc, sc.byName
	fams := sc.fams[:0]
	defer func() { sc.fams = fams }()
	for i, m := range metrics {
		cm, ok := m.(*constmetric.Metric)
		if !ok {
			return nil, notPlain(reasonForeign)
		}
		var typ dto.MetricType
		vt, _, _ := cm.Sample()
		switch vt {
		case prometheus.CounterValue:
			typ = dto.MetricType_COUNTER
		case prometheus.GaugeValue:
			typ = dto.MetricType_GAUGE
		default:
			typ = dto.MetricType_UNTYPED
		}
		d := cm.Family()
		f := byDesc[d]
		if f == nil {
			if !d.Plain() {
				return nil, notPlain(reasonQuoted)
			}
			// Descriptors may share a family (node_md_state has one
			// per state, a constant label), as in the registry.
			if f = byName[d.Name()]; f == nil {
				f = sc.newFamily(&used)
				*f = textFamily{name: d.Name(), help: d.Help(), typ: typ}
				byName[d.Name()] = f
				fams = append(fams, f)
			} else if f.help != d.Help() {
				return nil, notPlain(reasonConflict)
			}
			byDesc[d] = f
		}
		if f.typ != typ {
			return nil, notPlain(reasonConflict)
		}
		f.n++
		of[i] = f
	}
	for _, f := range fams {
		f.samples, all = all[:0:f.n], all[f.n:]
	}
	for i, m := range metrics {
		var s textSample
		_, s.val, s.pairs = m.(*constmetric.Metric).Sample()
		of[i].samples = append(of[i].samples, s)
	}
	slices.SortFunc(fams, func(a, b *textFamily) int { return strings.Compare(a.name, b.name) })
	for _, f := range fams {
		slices.SortFunc(f.samples, compareSamples)
		for j := 1; j < len(f.samples); j++ {
			if compareSamples(f.samples[j-1], f.samples[j]) == 0 {
				return nil, notPlain(reasonDuplicate)
			}
		}
	}
	return fams, nil
}

// compareSamples orders the series of one family as the registry does:
// fewer labels first, then by label values in the order of the (sorted)
// label names.
func compareSamples(a, b textSample) int {
	if c := cmp.Compare(len(a.pairs), len(b.pairs)); c != 0 {
		return c
	}
	for i := range a.pairs {
		if c := strings.Compare(a.pairs[i].GetValue(), b.pairs[i].GetValue()); c != 0 {
			return c
		}
	}
	return 0
}

// writeText writes the families of a scrape and those gathered from self
// (already sorted by name, written by expfmt), merged in name order, in
// the text format.
func writeText(w *bufio.Writer, fams []*textFamily, self []*dto.MetricFamily) error {
	var num []byte
	for len(fams) > 0 || len(self) > 0 {
		if len(self) > 0 && (len(fams) == 0 || self[0].GetName() < fams[0].name) {
			if _, err := expfmt.MetricFamilyToText(w, self[0]); err != nil {
				return err
			}
			self = self[1:]
			continue
		}
		f := fams[0]
		fams = fams[1:]
		w.WriteString("# HELP ")
		w.WriteString(f.name)
		w.WriteByte(' ')
		writeEscaped(w, f.help, false)
		w.WriteString("\n# TYPE ")
		w.WriteString(f.name)
		w.WriteByte(' ')
		w.WriteString(strings.ToLower(f.typ.String()))
		w.WriteByte('\n')
		for _, s := range f.samples {
			w.WriteString(f.name)
			if len(s.pairs) > 0 {
				w.WriteByte('{')
				for i, p := range s.pairs {
					if i > 0 {
						w.WriteByte(',')
					}
					w.WriteString(p.GetName())
					w.WriteString(`="`)
					writeEscaped(w, p.GetValue(), true)
					w.WriteByte('"')
				}
				w.WriteByte('}')
			}
			w.WriteByte(' ')
			num = appendFloat(num[:0], s.val)
			w.Write(num)
			w.WriteByte('\n')
		}
	}
	return w.Flush()
}

// writeEscaped escapes as the text format wants: backslash and newline in
// help texts, and double quotes too in label values.
func writeEscaped(w *bufio.Writer, s string, quote bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			w.WriteString(`\\`)
		case c == '\n':
			w.WriteString(`\n`)
		case c == '"' && quote:
			w.WriteString(`\"`)
		default:
			w.WriteByte(c)
		}
	}
}

// appendFloat formats a sample value as expfmt does.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case f == 1:
		return append(b, '1')
	case f == 0:
		return append(b, '0')
	case f == -1:
		return append(b, "-1"...)
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, +1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	default:
		return strconv.AppendFloat(b, f, 'g', -1, 64)
	}
}

// replay is an unchecked collector sending metrics already collected: the
// fallback hands a scrape's metrics to a prometheus.Registry with it.
type replay []prometheus.Metric

func (r replay) Describe(chan<- *prometheus.Desc) {}

func (r replay) Collect(ch chan<- prometheus.Metric) {
	for _, m := range r {
		ch <- m
	}
}
