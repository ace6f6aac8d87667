package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/blockdevice"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// dmMultipathCollector reports device-mapper multipath devices and their
// paths (/sys/block/dm-* with an "mpath-" uuid).
type dmMultipathCollector struct {
	series                                            seriesCache
	fs                                                blockdevice.FS
	sysPath                                           string
	info, active, size, paths, pathsActive, pathsFail *constmetric.Desc
	pathState                                         *constmetric.Desc
}

func newDMMultipathCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := blockdevice.NewFS(cfg.ProcPath, cfg.SysPath)
	if err != nil {
		return nil, fmt.Errorf("opening block devices under %q and %q: %w", cfg.ProcPath, cfg.SysPath, err)
	}
	dev := []string{"device", "sysfs_name"}
	d := func(name, help string, labels []string) *constmetric.Desc {
		return constmetric.NewDesc("node_dmmultipath_"+name, help, labels, nil)
	}
	return &dmMultipathCollector{
		fs:          fs,
		sysPath:     cfg.SysPath,
		info:        d("device_info", "Non-numeric information about a DM-multipath device.", []string{"device", "sysfs_name", "uuid"}),
		active:      d("device_active", "Whether the multipath device-mapper device is active (1) or suspended (0).", dev),
		size:        d("device_size_bytes", "Size of the multipath device in bytes, read from /sys/block/<dm>/size.", dev),
		paths:       d("device_paths", "Number of paths for a multipath device.", dev),
		pathsActive: d("device_paths_active", "Number of paths in active state (SCSI running or NVMe live) for a multipath device.", dev),
		pathsFail:   d("device_paths_failed", "Number of paths not in active state for a multipath device.", dev),
		pathState: d("path_state", "Reports the underlying device state for a multipath path, as read from /sys/block/<dev>/device/state.",
			[]string{"device", "path", "state"}),
	}, nil
}

func (c *dmMultipathCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	if any, err := anyEntry(filepath.Join(c.sysPath, "block"), prefixed("dm-")); err == nil && !any {
		return nil // no device-mapper devices
	}
	devices, err := c.fs.DMMultipathDevices()
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, os.ErrPermission):
		return fmt.Errorf("could not read DM-multipath devices: %w", errors.Join(nodeexp.ErrNoData, err))
	case err != nil:
		return fmt.Errorf("failed to scan DM-multipath devices: %w", err)
	}
	for _, d := range devices {
		c.series.send(ch, c.info, prometheus.GaugeValue, 1, d.Name, d.SysfsName, d.UUID)
		active := 1.0
		if d.Suspended {
			active = 0
		}
		c.series.send(ch, c.active, prometheus.GaugeValue, active, d.Name, d.SysfsName)
		c.series.send(ch, c.size, prometheus.GaugeValue, float64(d.SizeBytes), d.Name, d.SysfsName)
		var up, down float64
		for _, p := range d.Paths {
			// SCSI paths say "running", NVMe paths "live".
			if p.State == "running" || p.State == "live" {
				up++
			} else {
				down++
			}
			c.series.send(ch, c.pathState, prometheus.GaugeValue, 1, d.Name, p.Device, p.State)
		}
		c.series.send(ch, c.paths, prometheus.GaugeValue, float64(len(d.Paths)), d.Name, d.SysfsName)
		c.series.send(ch, c.pathsActive, prometheus.GaugeValue, up, d.Name, d.SysfsName)
		c.series.send(ch, c.pathsFail, prometheus.GaugeValue, down, d.Name, d.SysfsName)
	}
	return nil
}
