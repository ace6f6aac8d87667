package collector

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// cpufreqCollector reports each CPU's frequency scaling from
// /sys/devices/system/cpu/cpu*/cpufreq.
type cpufreqCollector struct {
	series  seriesCache
	fs      sysfs.FS
	sysPath string
	// In node_exporter's order: cpuinfo cur, avg, min, max; scaling cur,
	// min, max.
	freq     [7]*constmetric.Desc
	governor *constmetric.Desc
}

func newCpufreqCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := sysfs.NewFS(cfg.SysPath)
	if err != nil {
		return nil, fmt.Errorf("opening sysfs %q: %w", cfg.SysPath, err)
	}
	c := &cpufreqCollector{fs: fs, sysPath: cfg.SysPath,
		governor: constmetric.NewDesc("node_cpu_scaling_governor", "Current enabled CPU frequency governor.", []string{"cpu", "governor"}, nil)}
	for i, d := range [7][2]string{
		{"frequency_hertz", "Current CPU thread frequency in hertz."},
		{"frequency_avg_hertz", "Average CPU thread frequency in hertz."},
		{"frequency_min_hertz", "Minimum CPU thread frequency in hertz."},
		{"frequency_max_hertz", "Maximum CPU thread frequency in hertz."},
		{"scaling_frequency_hertz", "Current scaled CPU thread frequency in hertz."},
		{"scaling_frequency_min_hertz", "Minimum scaled CPU thread frequency in hertz."},
		{"scaling_frequency_max_hertz", "Maximum scaled CPU thread frequency in hertz."},
	} {
		c.freq[i] = constmetric.NewDesc("node_cpu_"+d[0], d[1], []string{"cpu"}, nil)
	}
	return c, nil
}

func (c *cpufreqCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	// Each CPU's cpufreq directory is a link to a policy here: none, no
	// frequency scaling (most VMs).
	if any, err := anyEntry(filepath.Join(c.sysPath, "devices/system/cpu/cpufreq"), prefixed("policy")); err == nil && !any {
		return nil
	}
	cpus, err := c.fs.SystemCpufreq()
	if err != nil {
		return fmt.Errorf("couldn't get cpufreq: %w", err)
	}
	for _, s := range cpus {
		// CPUs without a cpufreq directory come back empty.
		for i, kHz := range [7]*uint64{s.CpuinfoCurrentFrequency, s.CpuinfoAverageFrequency, s.CpuinfoMinimumFrequency, s.CpuinfoMaximumFrequency,
			s.ScalingCurrentFrequency, s.ScalingMinimumFrequency, s.ScalingMaximumFrequency} {
			if kHz != nil {
				c.series.send(ch, c.freq[i], prometheus.GaugeValue, float64(*kHz)*1000.0, s.Name)
			}
		}
		if s.Governor == "" {
			continue
		}
		for g := range strings.SplitSeq(s.AvailableGovernors, " ") {
			v := 0.0
			if g == s.Governor {
				v = 1
			}
			c.series.send(ch, c.governor, prometheus.GaugeValue, v, s.Name, g)
		}
	}
	return nil
}
