// Package nodeexp is nodekit's exporter framework: it runs a set of
// collectors (node_exporter's, in package collector, and the pod collector)
// under a per-scrape deadline, and serves their metrics over HTTP in
// Prometheus' text format, written by its own writer (see exposition.go).
//
// Unlike node_exporter, every collector runs under a per-scrape deadline
// (derived from Prometheus' X-Prometheus-Scrape-Timeout-Seconds header): a
// collector that misses it is reported with node_scrape_collector_success 0
// for that scrape, and the response is never held up by it.
package nodeexp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// Collector gathers one group of metrics. Update is called once per scrape,
// possibly concurrently with itself when scrapes overlap, so state kept
// between scrapes needs a lock. Update sends its metrics to sink and must
// honour ctx: when ctx is done the scrape has stopped waiting, and anything
// sent later is dropped.
//
// The text writer handles metrics built with package constmetric; any other
// metric sends the scrape through a prometheus.Registry instead (counted in
// nodeexp_exposition_fallbacks_total).
type Collector interface {
	Update(ctx context.Context, sink *Sink) error
}

// ErrNoData tells the exporter that the collector found nothing to report on
// this node (a kernel feature that is absent, a file that does not exist):
// success is 0 but it is logged at debug level only.
var ErrNoData = errors.New("collector returned no data")

var (
	scrapeDurationDesc = constmetric.NewDesc(
		"node_scrape_collector_duration_seconds",
		"node_exporter: Duration of a collector scrape.",
		[]string{"collector"}, nil,
	)
	scrapeSuccessDesc = constmetric.NewDesc(
		"node_scrape_collector_success",
		"node_exporter: Whether a collector succeeded.",
		[]string{"collector"}, nil,
	)
)

// Exporter runs a fixed set of collectors under a deadline. It is safe for
// concurrent scrapes.
type Exporter struct {
	names []string // sorted, for a stable exposition and log order
	// lastLen is each collector's number of metrics in the last scrape
	// (by index in names), the capacity to start the next with.
	lastLen []atomic.Int32
	// workers run the collectors' Updates; Close stops them.
	workers *workers
	// collectorLabel holds each collector's {collector="<name>"} pair for
	// node_scrape_collector_*, built once.
	collectorLabel map[string][]*dto.LabelPair
	collectors     map[string]Collector
	logger         *slog.Logger
	timeout        time.Duration
	offset         time.Duration
	// firstScrape is closed after the first complete scrape: nodeexp is ready
	// once it has collected once.
	firstOnce   sync.Once
	firstScrape chan struct{}
	// gzipFree holds one idle compressor for the next scrape. Scrapes
	// come one at a time, so one is enough; an overlapping scrape makes a
	// second, which is dropped afterwards.
	gzipFree chan *gzip.Writer
	textFree chan *textScratch
	bufFree  chan *bufio.Writer
	// fallbacks counts the scrapes written through a prometheus.Registry
	// instead of the text writer, by reason.
	fallbacks *prometheus.CounterVec
}

// NewExporter returns an exporter of these collectors, by name. Its own
// metrics (nodeexp_exposition_fallbacks_total) are registered with reg,
// which may be nil. It starts nothing.
func NewExporter(cfg Config, collectors map[string]Collector, logger *slog.Logger, reg prometheus.Registerer) (*Exporter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cs := maps.Clone(collectors)
	label := make(map[string][]*dto.LabelPair, len(cs))
	for name, c := range cs {
		if c == nil {
			return nil, fmt.Errorf("collector %q is nil", name)
		}
		pairs, err := scrapeSuccessDesc.Pairs(name)
		if err != nil {
			return nil, fmt.Errorf("collector name %q: %w", name, err)
		}
		label[name] = pairs
	}
	fallbacks := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nodeexp_exposition_fallbacks_total",
		Help: "Scrapes whose text exposition was written by a prometheus.Registry (slower) instead of nodeexp's text writer, by reason.",
	}, []string{"reason"})
	for _, r := range fallbackReasons {
		fallbacks.WithLabelValues(r)
	}
	if reg != nil {
		if err := reg.Register(fallbacks); err != nil {
			return nil, fmt.Errorf("registering the exporter's metrics: %w", err)
		}
	}
	names := slices.Sorted(maps.Keys(cs))
	return &Exporter{
		workers:        newWorkers(),
		lastLen:        make([]atomic.Int32, len(names)),
		collectorLabel: label,
		names:          names,
		collectors:     cs,
		logger:         logger,
		timeout:        cfg.ScrapeTimeout,
		offset:         cfg.ScrapeTimeoutOffset,
		firstScrape:    make(chan struct{}),
		gzipFree:       make(chan *gzip.Writer, 1),
		textFree:       make(chan *textScratch, 1),
		bufFree:        make(chan *bufio.Writer, 1),
		fallbacks:      fallbacks,
	}, nil
}

// Close stops the collectors' worker goroutines (waiting for Updates still
// running) and releases what collectors keep between scrapes (open files),
// for collectors that implement io.Closer. Scrapes may follow; they run
// each Update on a goroutine of its own and reopen files.
func (e *Exporter) Close() error {
	e.workers.Stop()
	var errs []error
	for _, name := range e.names {
		if c, ok := e.collectors[name].(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing collector %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Collectors returns the names of the enabled collectors, sorted.
func (e *Exporter) Collectors() []string { return slices.Clone(e.names) }

// Scraped is closed once the first scrape has completed.
func (e *Exporter) Scraped() <-chan struct{} { return e.firstScrape }

// Deadline returns how long a scrape may take, given the value of the
// X-Prometheus-Scrape-Timeout-Seconds header (empty when absent). The offset
// leaves Prometheus time to receive the body before its own timeout fires.
func (e *Exporter) Deadline(header string) time.Duration {
	d := e.timeout
	if header == "" {
		return d
	}
	secs, err := strconv.ParseFloat(header, 64)
	if err != nil || secs <= 0 || secs > 3600 {
		return d
	}
	h := time.Duration(secs*float64(time.Second)) - e.offset
	if h <= 0 {
		// An offset larger than the timeout would leave nothing: keep
		// half of what Prometheus grants instead.
		h = time.Duration(secs * float64(time.Second) / 2)
	}
	if d > 0 && d < h {
		return d
	}
	return h
}

// Handler serves the exposition: the collectors' metrics under the deadline
// derived from each request, followed by the families in self (the
// exporter's own process and Go metrics; may be nil).
func (e *Exporter) Handler(self prometheus.Gatherer, errorLog promhttp.Logger) http.Handler {
	opts := promhttp.HandlerOpts{
		ErrorLog:      errorLog,
		ErrorHandling: promhttp.ContinueOnError,
		// Compression is done below at gzip's fastest level: promhttp's
		// default level took a fifth of a scrape's CPU for a body that
		// compresses about as well either way.
		DisableCompression: true,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if d := e.Deadline(r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds")); d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		var out io.Writer = w
		rw := w
		if acceptsGzip(r) {
			gz := e.gzipWriter(w)
			defer e.putGzipWriter(gz)
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Add("Vary", "Accept-Encoding")
			out = gz
			rw = gzipResponseWriter{ResponseWriter: w, w: gz}
			defer func() {
				if err := gz.Close(); err != nil {
					e.logger.Debug("finishing gzip response", "err", err)
				}
			}()
		}
		// The format promhttp would choose (OpenMetrics is not offered).
		format := expfmt.Negotiate(r.Header)
		if format.FormatType() != expfmt.TypeTextPlain {
			e.serveRegistry(rw, r, &scrape{e: e, ctx: ctx}, self, opts)
			return
		}
		metrics := e.collect(ctx)
		sc := e.textScratch()
		defer e.putTextScratch(sc)
		fams, err := sc.build(metrics)
		var selfFams []*dto.MetricFamily
		if err == nil && self != nil {
			selfFams, err = self.Gather()
			for _, f := range selfFams {
				if _, clash := slices.BinarySearchFunc(fams, f.GetName(), func(t *textFamily, name string) int { return strings.Compare(t.name, name) }); clash {
					err = notPlain(reasonSelfClash)
				}
			}
		}
		if err != nil {
			// Let the registry check, report and write this scrape.
			var np *notPlainError
			if errors.As(err, &np) {
				e.fallbacks.WithLabelValues(np.reason).Inc()
			} else {
				e.fallbacks.WithLabelValues(reasonSelfError).Inc()
			}
			e.serveRegistry(rw, r, replay(metrics), self, opts)
			return
		}
		w.Header().Set("Content-Type", string(format))
		bw := e.bufWriter(out)
		defer e.putBufWriter(bw)
		if err := writeText(bw, fams, selfFams); err != nil {
			e.logger.Debug("writing the exposition", "err", err)
		}
	})
}

// serveRegistry serves the metrics of c (and self's) the way promhttp does,
// through a prometheus.Registry.
func (e *Exporter) serveRegistry(w http.ResponseWriter, r *http.Request, c prometheus.Collector, self prometheus.Gatherer, opts promhttp.HandlerOpts) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		http.Error(w, "registering scrape: "+err.Error(), http.StatusInternalServerError)
		return
	}
	var g prometheus.Gatherer = reg
	if self != nil {
		g = mergedGatherer{reg, self}
	}
	promhttp.HandlerFor(g, opts).ServeHTTP(w, r)
}

// collect runs one scrape and returns its metrics.
func (e *Exporter) collect(ctx context.Context) []prometheus.Metric {
	return (&scrape{e: e, ctx: ctx}).metrics()
}

// bufWriter returns a 32 KiB buffer writing to w; like the compressor,
// one idle buffer is kept for the next scrape.
func (e *Exporter) bufWriter(w io.Writer) *bufio.Writer {
	select {
	case b := <-e.bufFree:
		b.Reset(w)
		return b
	default:
		return bufio.NewWriterSize(w, 32<<10)
	}
}

func (e *Exporter) putBufWriter(b *bufio.Writer) {
	b.Reset(io.Discard)
	select {
	case e.bufFree <- b:
	default:
	}
}

// mergedGatherer serves the families of two gatherers whose names do not
// overlap (node_* and nodeexp_* from the scrape, process_* and go_* from
// the exporter's own registry). prometheus.Gatherers checked and hashed
// every metric a second time after each registry had already done so: a
// tenth of a scrape's CPU. Should a name come from both (a textfile
// defining go_goroutines, say), both results go through
// prometheus.Gatherers after all, which merges or reports them as it
// always has.
type mergedGatherer struct{ a, b prometheus.Gatherer }

func (m mergedGatherer) Gather() ([]*dto.MetricFamily, error) {
	a, errA := m.a.Gather()
	b, errB := m.b.Gather()
	out := make([]*dto.MetricFamily, 0, len(a)+len(b))
	out = append(append(out, a...), b...)
	slices.SortStableFunc(out, func(x, y *dto.MetricFamily) int { return strings.Compare(x.GetName(), y.GetName()) })
	for i := 1; i < len(out); i++ {
		if out[i].GetName() == out[i-1].GetName() {
			mfs, err := prometheus.Gatherers{gathered(a), gathered(b)}.Gather()
			return mfs, errors.Join(errA, errB, err)
		}
	}
	return out, errors.Join(errA, errB)
}

// gathered is a Gatherer of families already gathered.
type gathered []*dto.MetricFamily

func (g gathered) Gather() ([]*dto.MetricFamily, error) { return g, nil }

// gzipWriter returns a compressor writing to w. It is klauspost/compress's
// (twice as fast as compress/gzip's BestSpeed on an exposition, where a
// tenth of a scrape's CPU went to compress/flate) in its stateless mode:
// each 32 KiB write is compressed on its own, with tables from a pool, so
// no compressor state outlives a scrape. Kept idle between scrapes, the
// fastest level's 820 KiB of tables were two fifths of nodeexp's live heap
// (hence 1.6 MiB of GC heap goal); stateless, a 64 KiB exposition comes out
// 1% larger (12.6 vs 12.5 KB) in the same time (measured: 96 vs 91 µs).
func (e *Exporter) gzipWriter(w io.Writer) *gzip.Writer {
	select {
	case gz := <-e.gzipFree:
		gz.Reset(w)
		return gz
	default:
		gz, _ := gzip.NewWriterLevel(w, gzip.StatelessCompression) // a valid level cannot fail
		return gz
	}
}

// textScratch returns storage for a scrape's families; one is kept idle
// for the next scrape, as the compressor is.
func (e *Exporter) textScratch() *textScratch {
	select {
	case sc := <-e.textFree:
		return sc
	default:
		return new(textScratch)
	}
}

func (e *Exporter) putTextScratch(sc *textScratch) {
	sc.release()
	select {
	case e.textFree <- sc:
	default:
	}
}

func (e *Exporter) putGzipWriter(gz *gzip.Writer) {
	gz.Reset(io.Discard) // drop the reference to the response
	select {
	case e.gzipFree <- gz:
	default:
	}
}

// acceptsGzip reports whether the client listed gzip with a non-zero q.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) != "gzip" {
			continue
		}
		if q, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q="); ok {
			if v, err := strconv.ParseFloat(q, 64); err == nil && v == 0 {
				return false
			}
		}
		return true
	}
	return false
}

type gzipResponseWriter struct {
	http.ResponseWriter
	w io.Writer
}

func (g gzipResponseWriter) Write(b []byte) (int, error) { return g.w.Write(b) }

// Gatherer returns a gatherer running one scrape under ctx, for tests and
// for tools that do not go through HTTP.
func (e *Exporter) Gatherer(ctx context.Context) prometheus.Gatherer {
	reg := prometheus.NewRegistry()
	// Registering an unchecked collector into a fresh registry cannot fail.
	_ = reg.Register(&scrape{e: e, ctx: ctx})
	return reg
}

// scrape is one scrape's view of the exporter; it is an unchecked collector
// (Describe sends nothing) because the metric set depends on the node.
type scrape struct {
	e   *Exporter
	ctx context.Context
}

func (s *scrape) Describe(chan<- *prometheus.Desc) {}

func (s *scrape) Collect(ch chan<- prometheus.Metric) {
	for _, m := range s.metrics() {
		ch <- m
	}
}

// metrics runs every collector on its worker and returns their metrics,
// collector by collector, each followed by its duration and success. It
// returns when every collector has finished or the scrape's deadline has
// passed, whichever is first.
func (s *scrape) metrics() []prometheus.Metric {
	n := len(s.e.names)
	// One allocation each for all collectors' run states and for their
	// duration and success metrics.
	runs := make([]collectorRun, n)
	own := make([]constmetric.Metric, 2*n)
	finished := make(chan int, n) // indexes of runs; never blocks a worker
	b := &batch{ctx: s.ctx, jobs: make([]batchJob, n)}
	start := time.Now()
	for i, name := range s.e.names {
		r := &runs[i]
		r.idx, r.finished, r.start = i, finished, start
		r.sink.metrics = make([]prometheus.Metric, 0, int(s.e.lastLen[i].Load()))
		b.jobs[i] = batchJob{c: s.e.collectors[name], run: r}
	}
	s.e.workers.run(b)
	per := make([][]prometheus.Metric, n)
	missed := false
	for pending := n; pending > 0 && !missed; {
		select {
		case i := <-finished:
			// The worker is done with the run: its fields are ours.
			per[i] = s.result(i, runs[i].sink.metrics, runs[i].err, runs[i].took, own[2*i:2*i+2])
			s.e.lastLen[i].Store(int32(len(per[i])))
			pending--
		case <-s.ctx.Done():
			missed = true
		}
	}
	if missed {
		// Finishes that raced with the deadline still count.
		for drained := false; !drained; {
			select {
			case i := <-finished:
				per[i] = s.result(i, runs[i].sink.metrics, runs[i].err, runs[i].took, own[2*i:2*i+2])
			default:
				drained = true
			}
		}
		// Collectors still running keep what they sent so far; what they
		// send from now on is dropped.
		took := time.Since(start)
		for i, name := range s.e.names {
			if per[i] == nil {
				s.e.logger.Warn("collector missed the scrape deadline", "collector", name, "err", s.ctx.Err())
				per[i] = s.own(i, runs[i].sink.close(), took, 0, own[2*i:2*i+2])
			}
		}
	}
	s.e.firstOnce.Do(func() { close(s.e.firstScrape) })
	total := 0
	for _, p := range per {
		total += len(p)
	}
	out := make([]prometheus.Metric, 0, total)
	for _, p := range per {
		out = append(out, p...)
	}
	return out
}

// collectorRun is one collector's Update in one scrape. The worker running
// it owns it from begin until finish, which sends idx on finished.
type collectorRun struct {
	sink     Sink
	err      error
	start    time.Time     // the scrape's start, then the Update's
	took     time.Duration // the Update's
	idx      int
	finished chan<- int
}

func (r *collectorRun) begin() { r.start = time.Now() }

func (r *collectorRun) finish(err error) {
	r.err, r.took = err, time.Since(r.start)
	r.finished <- r.idx
}

// result is a finished collector's metrics with its duration and success:
// 0 when Update failed, or reported ErrNoData (logged at debug level only:
// hardware the node lacks says so on every scrape).
func (s *scrape) result(i int, metrics []prometheus.Metric, err error, took time.Duration, own []constmetric.Metric) []prometheus.Metric {
	name := s.e.names[i]
	success := 1.0
	switch {
	case errors.Is(err, ErrNoData):
		if s.e.logger.Enabled(s.ctx, slog.LevelDebug) {
			s.e.logger.Debug("collector returned no data", "collector", name, "err", err)
		}
		success = 0
	case err != nil:
		s.e.logger.Error("collector failed", "collector", name, "err", err)
		success = 0
	}
	return s.own(i, metrics, took, success, own)
}

// own appends the collector's duration and success, written into own.
func (s *scrape) own(i int, metrics []prometheus.Metric, took time.Duration, success float64, own []constmetric.Metric) []prometheus.Metric {
	pairs := s.e.collectorLabel[s.e.names[i]]
	own[0] = constmetric.New(scrapeDurationDesc, prometheus.GaugeValue, took.Seconds(), pairs)
	own[1] = constmetric.New(scrapeSuccessDesc, prometheus.GaugeValue, success, pairs)
	return append(metrics, &own[0], &own[1])
}
