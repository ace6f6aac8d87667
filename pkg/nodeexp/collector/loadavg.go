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

// loadavgCollector reports /proc/loadavg.
type loadavgCollector struct {
	series seriesCache // label pairs of the series, across scrapes
	fs     procfs.FS
	descs  [3]*constmetric.Desc
}

func newLoadavgCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := procfs.NewFS(cfg.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("opening procfs %q: %w", cfg.ProcPath, err)
	}
	return &loadavgCollector{fs: fs, descs: [3]*constmetric.Desc{
		constmetric.NewDesc("node_load1", "1m load average.", nil, nil),
		constmetric.NewDesc("node_load5", "5m load average.", nil, nil),
		constmetric.NewDesc("node_load15", "15m load average.", nil, nil),
	}}, nil
}

func (c *loadavgCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	l, err := c.fs.LoadAvg()
	if err != nil {
		return fmt.Errorf("couldn't get load: %w", err)
	}
	c.series.send(ch, c.descs[0], prometheus.GaugeValue, l.Load1)
	c.series.send(ch, c.descs[1], prometheus.GaugeValue, l.Load5)
	c.series.send(ch, c.descs[2], prometheus.GaugeValue, l.Load15)
	return nil
}
