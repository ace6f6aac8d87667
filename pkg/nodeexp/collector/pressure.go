package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// pressureCollector reports pressure stall information (/proc/pressure).
type pressureCollector struct {
	series                                 seriesCache // label pairs of the series, across scrapes
	fs                                     procfs.FS
	logger                                 *slog.Logger
	cpu, io, ioFull, mem, memFull, irqFull *constmetric.Desc
}

func newPressureCollector(cfg *Config, logger *slog.Logger) (nodeexp.Collector, error) {
	fs, err := procfs.NewFS(cfg.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("opening procfs %q: %w", cfg.ProcPath, err)
	}
	d := func(name, help string) *constmetric.Desc {
		return constmetric.NewDesc("node_pressure_"+name, help, nil, nil)
	}
	return &pressureCollector{
		fs:      fs,
		logger:  logger,
		cpu:     d("cpu_waiting_seconds_total", "Total time in seconds that processes have waited for CPU time"),
		io:      d("io_waiting_seconds_total", "Total time in seconds that processes have waited due to IO congestion"),
		ioFull:  d("io_stalled_seconds_total", "Total time in seconds no process could make progress due to IO congestion"),
		mem:     d("memory_waiting_seconds_total", "Total time in seconds that processes have waited for memory"),
		memFull: d("memory_stalled_seconds_total", "Total time in seconds no process could make progress due to memory congestion"),
		irqFull: d("irq_stalled_seconds_total", "Total time in seconds no process could make progress due to IRQ congestion"),
	}, nil
}

func (c *pressureCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	found := 0
	for _, res := range []string{"cpu", "io", "memory", "irq"} {
		v, err := c.fs.PSIStatsForResource(res)
		switch {
		case errors.Is(err, os.ErrNotExist):
			// irq needs Linux >= 6.1; all need CONFIG_PSI.
			c.logger.Debug("pressure information is unavailable", "resource", res)
			continue
		case errors.Is(err, syscall.ENOTSUP):
			return fmt.Errorf("pressure disabled (boot with psi=1): %w", nodeexp.ErrNoData)
		case err != nil:
			return fmt.Errorf("failed to retrieve pressure stats for %s: %w", res, err)
		}
		// Microseconds to seconds as node_exporter divides them, so the
		// floats are the same.
		sec := func(l *procfs.PSILine) float64 { return float64(l.Total) / 1000.0 / 1000.0 }
		switch {
		case res == "cpu" && v.Some != nil:
			c.series.send(ch, c.cpu, prometheus.CounterValue, sec(v.Some))
		case res == "io" && v.Some != nil && v.Full != nil:
			c.series.send(ch, c.io, prometheus.CounterValue, sec(v.Some))
			c.series.send(ch, c.ioFull, prometheus.CounterValue, sec(v.Full))
		case res == "memory" && v.Some != nil && v.Full != nil:
			c.series.send(ch, c.mem, prometheus.CounterValue, sec(v.Some))
			c.series.send(ch, c.memFull, prometheus.CounterValue, sec(v.Full))
		case res == "irq" && v.Full != nil:
			c.series.send(ch, c.irqFull, prometheus.CounterValue, sec(v.Full))
		default:
			return fmt.Errorf("pressure for %s is incomplete: %w", res, nodeexp.ErrNoData)
		}
		found++
	}
	if found == 0 {
		return fmt.Errorf("no pressure information: %w", nodeexp.ErrNoData)
	}
	return nil
}
