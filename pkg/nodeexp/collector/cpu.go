package collector

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// cpuCollector reports per-CPU time from /proc/stat.
type cpuCollector struct {
	series seriesCache // label pairs of the series, across scrapes
	fs     procfs.FS
	logger *slog.Logger
	cpu    *constmetric.Desc
	guest  *constmetric.Desc

	// Some kernels (and CPU hotplug) make counters go backwards; like
	// node_exporter, keep the last value seen so rate() never sees a reset
	// that did not happen.
	mu   sync.Mutex
	last map[int64]procfs.CPUStat

	path  string
	bufMu sync.Mutex
	buf   []byte
}

func newCPUCollector(cfg *Config, logger *slog.Logger) (nodeexp.Collector, error) {
	fs, err := procfs.NewFS(cfg.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("opening procfs %q: %w", cfg.ProcPath, err)
	}
	return &cpuCollector{
		fs:     fs,
		path:   filepath.Join(cfg.ProcPath, "stat"),
		logger: logger,
		cpu: constmetric.NewDesc("node_cpu_seconds_total",
			"Seconds the CPUs spent in each mode.", []string{"cpu", "mode"}, nil),
		guest: constmetric.NewDesc("node_cpu_guest_seconds_total",
			"Seconds the CPUs spent in guests (VMs) for each mode.", []string{"cpu", "mode"}, nil),
		last: make(map[int64]procfs.CPUStat),
	}, nil
}

// jumpBackSeconds: an idle counter dropping by more than this is a hotplug
// (the CPU restarted counting), not jitter, so the stored values reset.
const jumpBackSeconds = 3.0

func (c *cpuCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	c.bufMu.Lock()
	var err error
	c.buf, err = readFileInto(c.path, c.buf)
	var st procStat
	if err == nil {
		st, err = parseProcStat(c.buf)
	}
	c.bufMu.Unlock()
	if err != nil {
		return fmt.Errorf("couldn't get /proc/stat: %w", err)
	}
	stats := c.monotonic(st.cpu)
	for _, id := range slices.Sorted(maps.Keys(stats)) {
		s := stats[id]
		n := strconv.FormatInt(id, 10)
		for _, m := range [...]struct {
			mode string
			v    float64
		}{{"user", s.User}, {"nice", s.Nice}, {"system", s.System}, {"idle", s.Idle}, {"iowait", s.Iowait}, {"irq", s.IRQ}, {"softirq", s.SoftIRQ}, {"steal", s.Steal}} {
			c.series.send(ch, c.cpu, prometheus.CounterValue, m.v, n, m.mode)
		}
		c.series.send(ch, c.guest, prometheus.CounterValue, s.Guest, n, "user")
		c.series.send(ch, c.guest, prometheus.CounterValue, s.GuestNice, n, "nice")
	}
	return nil
}

func (c *cpuCollector) monotonic(cur map[int64]procfs.CPUStat) map[int64]procfs.CPUStat {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[int64]procfs.CPUStat, len(cur))
	for id, n := range cur {
		o, seen := c.last[id]
		if !seen || o.Idle-n.Idle >= jumpBackSeconds {
			o = procfs.CPUStat{}
		}
		o.User = max(o.User, n.User)
		o.Nice = max(o.Nice, n.Nice)
		o.System = max(o.System, n.System)
		o.Idle = max(o.Idle, n.Idle)
		o.Iowait = max(o.Iowait, n.Iowait)
		o.IRQ = max(o.IRQ, n.IRQ)
		o.SoftIRQ = max(o.SoftIRQ, n.SoftIRQ)
		o.Steal = max(o.Steal, n.Steal)
		o.Guest = max(o.Guest, n.Guest)
		o.GuestNice = max(o.GuestNice, n.GuestNice)
		out[id] = o
	}
	// CPUs that went offline are forgotten, as node_exporter does.
	c.last = out
	return out
}
