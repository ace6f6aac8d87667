package collector

import (
	"flag"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/test/fixturetree"
)

// BenchmarkFixtureTree is one gzip scrape of every default collector on
// node_exporter's fixture tree (where NVMe, XFS, NFS, IPVS, InfiniBand,
// hwmon, bcache, btrfs and ZFS all have data), through the HTTP handler.
func BenchmarkFixtureTree(b *testing.B) {
	tree, err := fixturetree.Unpack(b.Context(), b.TempDir())
	if err != nil {
		b.Fatalf("node_exporter's fixture tree (from the Go module proxy): %v", err)
	}
	fs := flag.NewFlagSet("nodeexp", flag.ContinueOnError)
	cfg := DefaultConfig()
	cfg.RegisterFlags(fs)
	if err := fs.Parse(tree.Args()); err != nil {
		b.Fatal(err)
	}
	cs, err := New(cfg, discard())
	if err != nil {
		b.Fatal(err)
	}
	e, err := nodeexp.NewExporter(nodeexp.DefaultConfig(), cs, discard(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	h := e.Handler(nil, nil)
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	w := &discardResponse{h: http.Header{}}
	b.ReportAllocs()
	var ru0, ru1 unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
	unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

type discardResponse struct{ h http.Header }

func (d *discardResponse) Header() http.Header         { return d.h }
func (d *discardResponse) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardResponse) WriteHeader(int)             {}
