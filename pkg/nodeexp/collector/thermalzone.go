package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// thermalZoneCollector reports thermal zones and cooling devices
// (/sys/class/thermal).
type thermalZoneCollector struct {
	series             seriesCache
	fs                 sysfs.FS
	sysPath            string
	temp, cur, maxStat *constmetric.Desc
}

func newThermalZoneCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := sysfs.NewFS(cfg.SysPath)
	if err != nil {
		return nil, fmt.Errorf("opening sysfs %q: %w", cfg.SysPath, err)
	}
	return &thermalZoneCollector{
		fs:      fs,
		sysPath: cfg.SysPath,
		temp:    constmetric.NewDesc("node_thermal_zone_temp", "Zone temperature in Celsius", []string{"zone", "type"}, nil),
		cur:     constmetric.NewDesc("node_cooling_device_cur_state", "Current throttle state of the cooling device", []string{"name", "type"}, nil),
		maxStat: constmetric.NewDesc("node_cooling_device_max_state", "Maximum throttle state of the cooling device", []string{"name", "type"}, nil),
	}, nil
}

func (c *thermalZoneCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	if any, err := anyEntry(filepath.Join(c.sysPath, "class/thermal"), prefixed("thermal_zone", "cooling_device")); err == nil && !any {
		return nil // none on this machine (VMs have none)
	}
	zones, err := c.fs.ClassThermalZoneStats()
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, os.ErrPermission), errors.Is(err, os.ErrInvalid), errors.Is(err, syscall.EINVAL):
		return fmt.Errorf("could not read thermal zones: %w", errors.Join(nodeexp.ErrNoData, err))
	case err != nil:
		return fmt.Errorf("couldn't get thermal zones: %w", err)
	}
	// A zone whose attributes could not be read is left out (its
	// temperature would read 0) and fails the scrape's success, as
	// node_exporter's procfs reported it.
	var zoneErrs []error
	for _, z := range zones {
		if z.ReadErrors != nil {
			zoneErrs = append(zoneErrs, fmt.Errorf("thermal zone %s: %w", z.Name, z.ReadErrors))
			continue
		}
		c.series.send(ch, c.temp, prometheus.GaugeValue, float64(z.Temp)/1000.0, z.Name, z.Type)
	}
	devices, err := c.fs.ClassCoolingDeviceStats()
	if err != nil {
		return fmt.Errorf("couldn't get cooling devices: %w", err)
	}
	for _, d := range devices {
		c.series.send(ch, c.cur, prometheus.GaugeValue, float64(d.CurState), d.Name, d.Type)
		c.series.send(ch, c.maxStat, prometheus.GaugeValue, float64(d.MaxState), d.Name, d.Type)
	}
	return errors.Join(zoneErrs...)
}
