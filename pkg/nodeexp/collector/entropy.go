package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// entropyCollector reports the kernel random pool (/proc/sys/kernel/random).
// The two numbers are read with readUint: procfs.FS.KernelRandom reads five
// files for them, 0.12 ms of a scrape's CPU on this machine against 0.02.
type entropyCollector struct {
	series          seriesCache // label pairs of the series, across scrapes
	dir             string
	avail, poolSize *constmetric.Desc
}

func newEntropyCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	return &entropyCollector{
		dir:      filepath.Join(cfg.ProcPath, "sys/kernel/random"),
		avail:    constmetric.NewDesc("node_entropy_available_bits", "Bits of available entropy.", nil, nil),
		poolSize: constmetric.NewDesc("node_entropy_pool_size_bits", "Bits of entropy pool.", nil, nil),
	}, nil
}

func (c *entropyCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	for _, f := range [...]struct {
		file string
		desc *constmetric.Desc
	}{{"entropy_avail", c.avail}, {"poolsize", c.poolSize}} {
		v, err := readUint(filepath.Join(c.dir, f.file))
		switch {
		case errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("couldn't get %s: %w", f.file, nodeexp.ErrNoData)
		case err != nil:
			return fmt.Errorf("failed to get kernel random stats: %w", err)
		}
		c.series.send(ch, f.desc, prometheus.GaugeValue, float64(v))
	}
	return nil
}
