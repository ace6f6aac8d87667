package collector

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// entropyCollector reports the kernel random pool (/proc/sys/kernel/random).
type entropyCollector struct {
	series          seriesCache // label pairs of the series, across scrapes
	fs              procfs.FS
	avail, poolSize *constmetric.Desc
}

func newEntropyCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := procfs.NewFS(cfg.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("opening procfs %q: %w", cfg.ProcPath, err)
	}
	return &entropyCollector{
		fs:       fs,
		avail:    constmetric.NewDesc("node_entropy_available_bits", "Bits of available entropy.", nil, nil),
		poolSize: constmetric.NewDesc("node_entropy_pool_size_bits", "Bits of entropy pool.", nil, nil),
	}, nil
}

func (c *entropyCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	r, err := c.fs.KernelRandom()
	if err != nil {
		return fmt.Errorf("failed to get kernel random stats: %w", err)
	}
	if r.EntropyAvaliable == nil {
		return fmt.Errorf("couldn't get entropy_avail: %w", nodeexp.ErrNoData)
	}
	c.series.send(ch, c.avail, prometheus.GaugeValue, float64(*r.EntropyAvaliable))
	if r.PoolSize == nil {
		return fmt.Errorf("couldn't get entropy poolsize: %w", nodeexp.ErrNoData)
	}
	c.series.send(ch, c.poolSize, prometheus.GaugeValue, float64(*r.PoolSize))
	return nil
}
