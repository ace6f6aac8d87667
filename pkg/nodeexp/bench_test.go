package nodeexp_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
	"golang.org/x/sys/unix"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/collector"
)

// BenchmarkScrape is one full scrape of the default collector set on this
// machine, encoded as text as Prometheus receives it. cpu-ns/op is the
// process CPU time per scrape, which a busy machine does not inflate the way
// it inflates ns/op.
func BenchmarkScrape(b *testing.B) {
	e := liveExporter(b)
	b.ReportAllocs()
	before := cpuTime(b)
	for b.Loop() {
		mfs, err := e.Gatherer(context.Background()).Gather()
		if err != nil {
			b.Fatal(err)
		}
		enc := expfmt.NewEncoder(io.Discard, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64((cpuTime(b)-before).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// liveExporter is the default collector set on this machine.
func liveExporter(tb testing.TB) *nodeexp.Exporter {
	tb.Helper()
	logger := slog.New(slog.DiscardHandler)
	cs, err := collector.New(collector.DefaultConfig(), logger)
	if err != nil {
		tb.Fatal(err)
	}
	e, err := nodeexp.NewExporter(nodeexp.DefaultConfig(), cs, logger, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

func cpuTime(tb testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHandler is one scrape as Prometheus makes it: the HTTP handler
// with gzip, on this machine's default collector set plus the process and
// Go metrics nodeexp serves (pkg/agent's registry), without the socket.
func BenchmarkHandler(b *testing.B) {
	e := liveExporter(b)
	self := prometheus.NewRegistry()
	self.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h := e.Handler(self, nil)
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	w := &discardResponse{h: http.Header{}}
	b.ReportAllocs()
	before := cpuTime(b)
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
	b.ReportMetric(float64((cpuTime(b)-before).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

type discardResponse struct{ h http.Header }

func (d *discardResponse) Header() http.Header         { return d.h }
func (d *discardResponse) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardResponse) WriteHeader(int)             {}
