package collector

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// arpCollector counts neighbour entries per device from /proc/net/arp (the
// "Node Exporter Full" dashboard graphs it).
type arpCollector struct {
	series  seriesCache // label pairs of the series, across scrapes
	fs      procfs.FS
	devices deviceFilter
	desc    *constmetric.Desc
}

func newARPCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := procfs.NewFS(cfg.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("opening procfs %q: %w", cfg.ProcPath, err)
	}
	devices, err := newDeviceFilter(cfg.ArpDeviceInclude, cfg.ArpDeviceExclude)
	if err != nil {
		return nil, fmt.Errorf("compiling the arp device filters: %w", err)
	}
	return &arpCollector{fs: fs, devices: devices, desc: constmetric.NewDesc("node_arp_entries", "ARP entries by device", []string{"device"}, nil)}, nil
}

func (c *arpCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	entries, err := c.fs.GatherARPEntries()
	if err != nil {
		return fmt.Errorf("could not get ARP entries: %w", err)
	}
	n := map[string]int{}
	for _, e := range entries {
		if !c.devices.ignored(e.Device) {
			n[e.Device]++
		}
	}
	for _, dev := range slices.Sorted(maps.Keys(n)) {
		c.series.send(ch, c.desc, prometheus.GaugeValue, float64(n[dev]), dev)
	}
	return nil
}
