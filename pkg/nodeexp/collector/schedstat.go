package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// schedstatCollector reports per-CPU scheduler statistics from
// /proc/schedstat (absent when the kernel lacks CONFIG_SCHEDSTATS).
type schedstatCollector struct {
	series                      seriesCache // label pairs of the series, across scrapes
	fs                          procfs.FS
	running, waiting, timeslice *constmetric.Desc
}

func newSchedstatCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := procfs.NewFS(cfg.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("opening procfs %q: %w", cfg.ProcPath, err)
	}
	l := []string{"cpu"}
	return &schedstatCollector{
		fs:        fs,
		running:   constmetric.NewDesc("node_schedstat_running_seconds_total", "Number of seconds CPU spent running a process.", l, nil),
		waiting:   constmetric.NewDesc("node_schedstat_waiting_seconds_total", "Number of seconds spent by processing waiting for this CPU.", l, nil),
		timeslice: constmetric.NewDesc("node_schedstat_timeslices_total", "Number of timeslices executed by CPU.", l, nil),
	}, nil
}

func (c *schedstatCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	s, err := c.fs.Schedstat()
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("schedstat: %w", nodeexp.ErrNoData)
	}
	if err != nil {
		return fmt.Errorf("couldn't get /proc/schedstat: %w", err)
	}
	for _, cpu := range s.CPUs {
		c.series.send(ch, c.running, prometheus.CounterValue, float64(cpu.RunningNanoseconds)/1e9, cpu.CPUNum)
		c.series.send(ch, c.waiting, prometheus.CounterValue, float64(cpu.WaitingNanoseconds)/1e9, cpu.CPUNum)
		c.series.send(ch, c.timeslice, prometheus.CounterValue, float64(cpu.RunTimeslices), cpu.CPUNum)
	}
	return nil
}
