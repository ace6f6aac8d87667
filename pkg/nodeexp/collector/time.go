package collector

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// timeCollector reports the system clock, the time zone offset and the
// clock sources.
type timeCollector struct {
	series                    seriesCache // label pairs of the series, across scrapes
	fs                        sysfs.FS
	logger                    *slog.Logger
	now, zone, avail, current *constmetric.Desc
	clock                     func() time.Time
}

func newTimeCollector(cfg *Config, logger *slog.Logger) (nodeexp.Collector, error) {
	fs, err := sysfs.NewFS(cfg.SysPath)
	if err != nil {
		return nil, fmt.Errorf("opening sysfs %q: %w", cfg.SysPath, err)
	}
	return &timeCollector{
		fs:      fs,
		logger:  logger,
		now:     constmetric.NewDesc("node_time_seconds", "System time in seconds since epoch (1970).", nil, nil),
		zone:    constmetric.NewDesc("node_time_zone_offset_seconds", "System time zone offset in seconds.", []string{"time_zone"}, nil),
		avail:   constmetric.NewDesc("node_time_clocksource_available_info", "Available clocksources read from '/sys/devices/system/clocksource'.", []string{"device", "clocksource"}, nil),
		current: constmetric.NewDesc("node_time_clocksource_current_info", "Current clocksource read from '/sys/devices/system/clocksource'.", []string{"device", "clocksource"}, nil),
		clock:   time.Now,
	}, nil
}

func (c *timeCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	now := c.clock()
	c.series.send(ch, c.now, prometheus.GaugeValue, float64(now.UnixNano())/1e9)
	zone, offset := now.Zone()
	c.series.send(ch, c.zone, prometheus.GaugeValue, float64(offset), zone)
	sources, err := c.fs.ClockSources()
	if err != nil {
		// Containers and some kernels hide the clocksource directory;
		// the clock itself was still reported.
		c.logger.Debug("couldn't get clocksources", "err", err)
		return nil
	}
	for i, s := range sources {
		dev := strconv.Itoa(i)
		if s.Name != "" {
			dev = s.Name
		}
		for _, a := range s.Available {
			c.series.send(ch, c.avail, prometheus.GaugeValue, 1, dev, a)
		}
		c.series.send(ch, c.current, prometheus.GaugeValue, 1, dev, s.Current)
	}
	return nil
}
