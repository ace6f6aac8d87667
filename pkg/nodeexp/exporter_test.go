package nodeexp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newExporter(t testing.TB, cs map[string]Collector, reg prometheus.Registerer) *Exporter {
	t.Helper()
	e, err := NewExporter(DefaultConfig(), cs, discard(), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func gauge(name, help string, v float64) prometheus.Metric {
	return constmetric.NewDesc(name, help, nil, nil).MustNew(prometheus.GaugeValue, v)
}

// fixedCollector sends the same metrics every scrape.
type fixedCollector []prometheus.Metric

func (f fixedCollector) Update(_ context.Context, ch *Sink) error {
	for _, m := range f {
		ch.Send(m)
	}
	return nil
}

// failingCollector sends one metric, then fails with err.
type failingCollector struct {
	sent string
	err  error
}

func (f failingCollector) Update(_ context.Context, ch *Sink) error {
	ch.Send(gauge(f.sent, "Sent before the failure.", 1))
	return f.err
}

// hungCollector blocks until release is closed, like a collector stuck in
// a statfs of a dead NFS server; entered is closed once it has started.
type hungCollector struct {
	entered, release chan struct{}
}

func (h hungCollector) Update(context.Context, *Sink) error {
	close(h.entered)
	<-h.release
	return nil
}

// TestCollectorOutcomes: a collector's success is 1 when Update returns
// nil, 0 when it fails or reports ErrNoData, and whatever it sent before
// failing is kept; the scrape itself never fails.
func TestCollectorOutcomes(t *testing.T) {
	e := newExporter(t, map[string]Collector{
		"ok":     fixedCollector{gauge("node_ok", "Fine.", 1)},
		"failed": failingCollector{"node_partial", errors.New("couldn't read: broken")},
		"nodata": failingCollector{"node_partial_too", errors.Join(ErrNoData, errors.New("absent"))},
	}, nil)
	want := `
# HELP node_scrape_collector_success node_exporter: Whether a collector succeeded.
# TYPE node_scrape_collector_success gauge
node_scrape_collector_success{collector="failed"} 0
node_scrape_collector_success{collector="nodata"} 0
node_scrape_collector_success{collector="ok"} 1
`
	if err := testutil.GatherAndCompare(e.Gatherer(t.Context()), strings.NewReader(want), "node_scrape_collector_success"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(e.Gatherer(t.Context()), "node_partial", "node_partial_too", "node_ok"); err != nil || n != 3 {
		t.Errorf("series kept: %d (%v), want node_ok and what the failing collectors sent", n, err)
	}
}

// panickingCollector panics half-way, as a parser indexing past the end
// of a malformed file does.
type panickingCollector struct{}

func (panickingCollector) Update(_ context.Context, ch *Sink) error {
	ch.Send(gauge("node_before_panic", "Sent before the panic.", 1))
	var fields []string
	_ = fields[3]
	return nil
}

// TestCollectorPanic: a collector that panics fails its own success, the
// other collectors' metrics are served, and the process lives on, for this
// scrape and the next (the panicking worker's pool starts a new one).
func TestCollectorPanic(t *testing.T) {
	e := newExporter(t, map[string]Collector{
		"broken": panickingCollector{},
		"ok":     fixedCollector{gauge("node_ok", "Fine.", 1)},
	}, nil)
	for range 2 {
		want := `
# HELP node_ok Fine.
# TYPE node_ok gauge
node_ok 1
# HELP node_scrape_collector_success node_exporter: Whether a collector succeeded.
# TYPE node_scrape_collector_success gauge
node_scrape_collector_success{collector="broken"} 0
node_scrape_collector_success{collector="ok"} 1
`
		if err := testutil.GatherAndCompare(e.Gatherer(t.Context()), strings.NewReader(want), "node_ok", "node_scrape_collector_success"); err != nil {
			t.Fatal(err)
		}
	}
	var pe *PanicError
	if err := safeUpdate(panickingCollector{}, t.Context(), NewSink(1)); !errors.As(err, &pe) || !strings.Contains(err.Error(), "index out of range") {
		t.Errorf("safeUpdate = %v, want a PanicError naming the index", err)
	}
}

// TestScrapeDeadline: a collector that hangs past the scrape's deadline is
// reported with success 0 while the others' metrics are served, and the
// response does not wait for it.
func TestScrapeDeadline(t *testing.T) {
	hung := hungCollector{entered: make(chan struct{}), release: make(chan struct{})}
	defer close(hung.release)
	e := newExporter(t, map[string]Collector{
		"filesystem": hung,
		"meminfo":    fixedCollector{gauge("node_memory_MemTotal_bytes", "Memory information field MemTotal_bytes.", 1024)},
	}, nil)
	srv := httptest.NewServer(e.Handler(nil, nil))
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "0.7")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	<-hung.entered
	// The response is complete while the collector is still blocked: the
	// release channel has not been closed yet.
	select {
	case <-hung.release:
		t.Fatal("the hung collector was released before the scrape returned")
	default:
	}
	for _, want := range []string{
		`node_scrape_collector_success{collector="filesystem"} 0`,
		`node_scrape_collector_success{collector="meminfo"} 1`,
		`node_memory_MemTotal_bytes 1024`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape output lacks %q", want)
		}
	}
}

func TestDeadline(t *testing.T) {
	e := &Exporter{timeout: 10 * time.Second, offset: 500 * time.Millisecond}
	for _, tc := range []struct {
		name, header string
		want         time.Duration
	}{
		{"no header uses flag", "", 10 * time.Second},
		{"header minus offset", "5", 4500 * time.Millisecond},
		{"capped by flag", "30", 10 * time.Second},
		{"offset larger than timeout halves", "0.4", 200 * time.Millisecond},
		{"garbage header ignored", "soon", 10 * time.Second},
		{"negative header ignored", "-3", 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := e.Deadline(tc.header); got != tc.want {
				t.Errorf("Deadline(%q) = %v, want %v", tc.header, got, tc.want)
			}
		})
	}
}

func TestHandlerGzipAndSelfMetrics(t *testing.T) {
	e := newExporter(t, map[string]Collector{"loadavg": fixedCollector{gauge("node_load1", "1m load average.", 0.5)}}, nil)
	self := prometheus.NewRegistry()
	self.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "nodeexp_test_self", Help: "x"}))
	srv := httptest.NewServer(e.Handler(self, nil))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	tr := &http.Transport{DisableCompression: true}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Content-Encoding"); got != "gzip" {
		t.Errorf("Content-Encoding = %q, want gzip", got)
	}
	resp, err = srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"node_load1 ", "nodeexp_test_self 0", `node_scrape_collector_success{collector="loadavg"} 1`} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("response lacks %q", want)
		}
	}
	select {
	case <-e.Scraped():
	default:
		t.Error("Scraped() not closed after a scrape")
	}
}

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"identity", false},
		{"deflate, gzip;q=0.5", true},
		{"gzip;q=0", false},
		{"gzip; q=0.0, identity", false},
		{"zstd,gzip", true},
	} {
		r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		r.Header.Set("Accept-Encoding", tc.header)
		if got := acceptsGzip(r); got != tc.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

// TestMergedGatherer checks that merging two registries gives what
// prometheus.Gatherers gives: sorted families, and families of the same
// name merged or reported as Gatherers does.
func TestMergedGatherer(t *testing.T) {
	gauge := func(reg *prometheus.Registry, name, help string, labels prometheus.Labels) {
		reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels}))
	}
	for _, tc := range []struct {
		name    string
		a, b    func(*prometheus.Registry)
		wantErr bool
	}{
		{"disjoint", func(r *prometheus.Registry) { gauge(r, "node_b", "b", nil); gauge(r, "node_z", "z", nil) },
			func(r *prometheus.Registry) { gauge(r, "go_a", "a", nil); gauge(r, "process_c", "c", nil) }, false},
		{"same family, other series", func(r *prometheus.Registry) { gauge(r, "x", "h", prometheus.Labels{"k": "1"}) },
			func(r *prometheus.Registry) { gauge(r, "x", "h", prometheus.Labels{"k": "2"}) }, false},
		{"same series", func(r *prometheus.Registry) { gauge(r, "x", "h", nil) },
			func(r *prometheus.Registry) { gauge(r, "x", "h", nil) }, true},
		{"other help", func(r *prometheus.Registry) { gauge(r, "x", "h", nil) },
			func(r *prometheus.Registry) { gauge(r, "x", "other", prometheus.Labels{"k": "2"}) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := prometheus.NewRegistry(), prometheus.NewRegistry()
			tc.a(a)
			tc.b(b)
			got, err := mergedGatherer{a, b}.Gather()
			want, wantErr := prometheus.Gatherers{a, b}.Gather()
			if (err != nil) != tc.wantErr || (wantErr != nil) != tc.wantErr {
				t.Fatalf("errors: merged %v, Gatherers %v; want error %v", err, wantErr, tc.wantErr)
			}
			if len(got) != len(want) {
				t.Fatalf("merged %d families, Gatherers %d", len(got), len(want))
			}
			for i := range got {
				if got[i].String() != want[i].String() {
					t.Errorf("family %d: merged %v, Gatherers %v", i, got[i], want[i])
				}
			}
		})
	}
}
