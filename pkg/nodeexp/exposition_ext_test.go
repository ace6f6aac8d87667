package nodeexp_test

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/collector"
	"github.com/nodekit/nodekit/pkg/nodeexp/podnames"
	"github.com/nodekit/nodekit/pkg/nodeexp/podstats"
)

func selfFamilies(t *testing.T) []*dto.MetricFamily {
	t.Helper()
	self := prometheus.NewRegistry()
	self.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGauge(prometheus.GaugeOpts{Name: "nodeexp_self", Help: "Quote \" backslash \\ newline \n."}))
	mfs, err := self.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// TestTextWriterMatchesExpfmt compares the text writer with the registry
// and expfmt, byte for byte, on the collectors' fixtures (pods included)
// and on a scrape of this machine, each merged with the Go and process
// metrics.
func TestTextWriterMatchesExpfmt(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	fixtures := filepath.Join("collector", "testdata", "fixtures")
	fixture := collector.DefaultConfig()
	fixture.ProcPath = filepath.Join(fixtures, "proc")
	fixture.SysPath = filepath.Join(fixtures, "sys")
	fixture.RootPath = filepath.Join(fixtures, "root")
	fixture.UdevDataPath = filepath.Join(fixtures, "udev")
	fixture.TextfileDirectories = []string{filepath.Join(fixtures, "textfile")}
	self := selfFamilies(t)
	for name, cfg := range map[string]collector.Config{"fixtures": fixture, "this machine": collector.DefaultConfig()} {
		t.Run(name, func(t *testing.T) {
			cs, err := collector.New(cfg, logger)
			if err != nil {
				t.Fatal(err)
			}
			cs["pods"] = podstats.New(podstats.Config{CgroupRoot: filepath.Join(cfg.SysPath, "fs/cgroup")},
				podnames.New(filepath.Join(cfg.RootPath, "var/log/pods")), logger)
			e, err := nodeexp.NewExporter(nodeexp.DefaultConfig(), cs, logger, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			got, want, err := nodeexp.TextAndRegistryText(t.Context(), e, self)
			if err != nil {
				t.Fatalf("the text writer left the scrape to the registry: %v", err)
			}
			if got != want {
				i := firstDiff(got, want)
				t.Errorf("text writer and expfmt differ; first difference at byte %d:\n got: %q\nwant: %q", i, around(got, i), around(want, i))
			}
		})
	}
}

func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func around(s string, i int) string { return s[max(0, i-80):min(len(s), i+80)] }
