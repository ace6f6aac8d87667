package collector

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// statCollector reports the system-wide counters of /proc/stat.
type statCollector struct {
	series                                     seriesCache // label pairs of the series, across scrapes
	fs                                         procfs.FS
	intr, ctxt, forks, btime, running, blocked *constmetric.Desc
	// softirqs is reported under --collector.stat.softirq.
	softirqs     *constmetric.Desc
	withSoftirqs bool

	path string
	mu   sync.Mutex // guards buf
	buf  []byte
}

func newStatCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := procfs.NewFS(cfg.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("opening procfs %q: %w", cfg.ProcPath, err)
	}
	return &statCollector{
		fs:           fs,
		path:         filepath.Join(cfg.ProcPath, "stat"),
		intr:         constmetric.NewDesc("node_intr_total", "Total number of interrupts serviced.", nil, nil),
		ctxt:         constmetric.NewDesc("node_context_switches_total", "Total number of context switches.", nil, nil),
		forks:        constmetric.NewDesc("node_forks_total", "Total number of forks.", nil, nil),
		btime:        constmetric.NewDesc("node_boot_time_seconds", "Node boot time, in unixtime.", nil, nil),
		running:      constmetric.NewDesc("node_procs_running", "Number of processes in runnable state.", nil, nil),
		blocked:      constmetric.NewDesc("node_procs_blocked", "Number of processes blocked waiting for I/O to complete.", nil, nil),
		softirqs:     constmetric.NewDesc("node_softirqs_total", "Number of softirq calls.", []string{"vector"}, nil),
		withSoftirqs: cfg.StatSoftirq,
	}, nil
}

func (c *statCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	c.mu.Lock()
	var err error
	c.buf, err = readFileInto(c.path, c.buf)
	var s procStat
	if err == nil {
		s, err = parseProcStat(c.buf)
	}
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("couldn't get /proc/stat: %w", err)
	}
	c.series.send(ch, c.intr, prometheus.CounterValue, float64(s.intr))
	c.series.send(ch, c.ctxt, prometheus.CounterValue, float64(s.ctxt))
	c.series.send(ch, c.forks, prometheus.CounterValue, float64(s.processes))
	c.series.send(ch, c.btime, prometheus.GaugeValue, float64(s.btime))
	c.series.send(ch, c.running, prometheus.GaugeValue, float64(s.running))
	c.series.send(ch, c.blocked, prometheus.GaugeValue, float64(s.blocked))
	if c.withSoftirqs {
		for i, v := range s.softirq {
			c.series.send(ch, c.softirqs, prometheus.CounterValue, float64(v), softirqVectors[i])
		}
	}
	return nil
}
