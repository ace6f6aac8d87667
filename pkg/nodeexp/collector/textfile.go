package collector

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// textfileCollector exposes the *.prom files in --collector.textfile.directory
// (cron jobs' and node agents' metrics), as node_exporter does.
type textfileCollector struct {
	dirs         []string
	logger       *slog.Logger
	mtime, error *constmetric.Desc
}

func newTextfileCollector(cfg *Config, logger *slog.Logger) (nodeexp.Collector, error) {
	return &textfileCollector{
		dirs:   cfg.TextfileDirectories,
		logger: logger,
		mtime:  constmetric.NewDesc("node_textfile_mtime_seconds", "Unixtime mtime of textfiles successfully read.", []string{"file"}, nil),
		error:  constmetric.NewDesc("node_textfile_scrape_error", "1 if there was an error opening or reading a file, 0 otherwise", nil, nil),
	}, nil
}

func (c *textfileCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	errored := false
	var dirs []string
	for _, g := range c.dirs {
		ps, err := filepath.Glob(g)
		if err != nil || len(ps) == 0 {
			ps = []string{g}
		}
		dirs = append(dirs, ps...)
	}
	// Families are merged by name across files: the same metric written by
	// two files is one family, as long as their help and type agree.
	families := map[string]*dto.MetricFamily{}
	sources := map[string][]string{}
	mtimes := map[string]float64{}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			errored = true
			c.logger.Error("failed to read textfile collector directory", "path", dir, "err", err)
			continue
		}
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".prom") {
				continue
			}
			path := filepath.Join(dir, e.Name())
			mfs, mtime, err := readTextfile(path)
			if err != nil {
				errored = true
				c.logger.Error("failed to collect textfile data", "file", e.Name(), "err", err)
				continue
			}
			for name, mf := range mfs {
				prev, seen := families[name]
				switch {
				case !seen:
					families[name] = mf
				case prev.GetType() != mf.GetType() || (mf.Help != nil && prev.Help != nil && prev.GetHelp() != mf.GetHelp()):
					errored = true
					c.logger.Error("inconsistent metric help text or type", "metric", name, "file", path)
					continue
				default:
					prev.Metric = append(prev.Metric, mf.Metric...)
					if prev.Help == nil {
						prev.Help = mf.Help
					}
				}
				sources[name] = append(sources[name], path)
			}
			mtimes[path] = mtime
		}
	}
	for _, name := range slices.Sorted(maps.Keys(families)) {
		mf := families[name]
		help := mf.GetHelp()
		if mf.Help == nil {
			help = "Metric read from " + strings.Join(sources[name], ", ")
		}
		convertFamily(ch, name, help, mf)
	}
	for _, p := range slices.Sorted(maps.Keys(mtimes)) {
		send(ch, c.mtime, prometheus.GaugeValue, mtimes[p], p)
	}
	e := 0.0
	if errored {
		e = 1
	}
	send(ch, c.error, prometheus.GaugeValue, e)
	return nil
}

func readTextfile(path string) (map[string]*dto.MetricFamily, float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("opening %s: %w", path, err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(f)
	if err != nil {
		return nil, 0, fmt.Errorf("parsing %s: %w", path, err)
	}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			if m.TimestampMs != nil {
				return nil, 0, fmt.Errorf("%s: textfile contains unsupported client-side timestamps, skipping entire file", path)
			}
		}
	}
	st, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("stat %s: %w", path, err)
	}
	// Whole seconds, as node_exporter reports them.
	return mfs, float64(st.ModTime().UnixNano() / 1e9), nil
}

// convertFamily turns a parsed family into constant metrics. Series lacking
// a label that others in the family have get it with an empty value, so
// every series of a family has the same label names.
func convertFamily(ch *nodeexp.Sink, name, help string, mf *dto.MetricFamily) {
	seen := map[string]bool{}
	for _, m := range mf.Metric {
		for _, l := range m.Label {
			seen[l.GetName()] = true
		}
	}
	names := slices.Sorted(maps.Keys(seen))
	desc := constmetric.NewDesc(name, help, names, nil)
	for _, m := range mf.Metric {
		vals := make([]string, len(names))
		for _, l := range m.Label {
			vals[slices.Index(names, l.GetName())] = l.GetValue()
		}
		var (
			pm  prometheus.Metric
			err error
		)
		// Summaries and histograms are client_golang's constant metrics,
		// which the text writer leaves to the registry.
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			pm = desc.MustNew(prometheus.CounterValue, m.GetCounter().GetValue(), vals...)
		case dto.MetricType_GAUGE:
			pm = desc.MustNew(prometheus.GaugeValue, m.GetGauge().GetValue(), vals...)
		case dto.MetricType_SUMMARY:
			q := map[float64]float64{}
			for _, x := range m.GetSummary().GetQuantile() {
				q[x.GetQuantile()] = x.GetValue()
			}
			pm, err = prometheus.NewConstSummary(desc.Desc(), m.GetSummary().GetSampleCount(), m.GetSummary().GetSampleSum(), q, vals...)
		case dto.MetricType_HISTOGRAM:
			b := map[float64]uint64{}
			for _, x := range m.GetHistogram().GetBucket() {
				// +Inf is implied by the sample count; keeping it would
				// print the bucket twice.
				if math.IsInf(x.GetUpperBound(), 1) {
					continue
				}
				b[x.GetUpperBound()] = x.GetCumulativeCount()
			}
			pm, err = prometheus.NewConstHistogram(desc.Desc(), m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum(), b, vals...)
		default:
			pm = desc.MustNew(prometheus.UntypedValue, m.GetUntyped().GetValue(), vals...)
		}
		if err != nil {
			pm = prometheus.NewInvalidMetric(desc.Desc(), err)
		}
		ch.Send(pm)
	}
}
