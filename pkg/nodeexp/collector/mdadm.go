package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
	"github.com/prometheus/procfs/sysfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// mdadmCollector reports Linux software RAID from /proc/mdstat and
// /sys/block/md*/md (the node-mixin's NodeRAIDDegraded and
// NodeRAIDDiskFailure alerts read it).
type mdadmCollector struct {
	series                                               seriesCache // label pairs of the series, across scrapes
	procfs                                               procfs.FS
	sysfs                                                sysfs.FS
	state                                                map[string]*constmetric.Desc // by mdstat activity state
	disks, required, blocks, synced, raidDisks, degraded *constmetric.Desc
}

// mdStates maps /proc/mdstat's activity states to node_md_state's state label.
var mdStates = [][2]string{{"active", "active"}, {"inactive", "inactive"}, {"recovering", "recovering"}, {"resyncing", "resync"}, {"checking", "check"}}

func newMdadmCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	pfs, err := procfs.NewFS(cfg.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("opening procfs %q: %w", cfg.ProcPath, err)
	}
	sfs, err := sysfs.NewFS(cfg.SysPath)
	if err != nil {
		return nil, fmt.Errorf("opening sysfs %q: %w", cfg.SysPath, err)
	}
	dev := []string{"device"}
	c := &mdadmCollector{
		procfs:    pfs,
		sysfs:     sfs,
		state:     map[string]*constmetric.Desc{},
		disks:     constmetric.NewDesc("node_md_disks", "Number of active/failed/spare disks of device.", []string{"device", "state"}, nil),
		required:  constmetric.NewDesc("node_md_disks_required", "Total number of disks of device.", dev, nil),
		blocks:    constmetric.NewDesc("node_md_blocks", "Total number of blocks on device.", dev, nil),
		synced:    constmetric.NewDesc("node_md_blocks_synced", "Number of blocks synced on device.", dev, nil),
		raidDisks: constmetric.NewDesc("node_md_raid_disks", "Number of raid disks on device.", dev, nil),
		degraded:  constmetric.NewDesc("node_md_degraded", "Number of degraded disks on device.", dev, nil),
	}
	for _, s := range mdStates {
		c.state[s[0]] = constmetric.NewDesc("node_md_state", "Indicates the state of md-device.", dev, prometheus.Labels{"state": s[1]})
	}
	return c, nil
}

func (c *mdadmCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	stats, err := c.procfs.MDStat()
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no /proc/mdstat: %w", nodeexp.ErrNoData)
	}
	if err != nil {
		return fmt.Errorf("error parsing mdstatus: %w", err)
	}
	for _, s := range stats {
		c.series.send(ch, c.required, prometheus.GaugeValue, float64(s.DisksTotal), s.Name)
		c.series.send(ch, c.disks, prometheus.GaugeValue, float64(s.DisksActive), s.Name, "active")
		c.series.send(ch, c.disks, prometheus.GaugeValue, float64(s.DisksFailed), s.Name, "failed")
		c.series.send(ch, c.disks, prometheus.GaugeValue, float64(s.DisksSpare), s.Name, "spare")
		for _, st := range mdStates {
			v := 0.0
			if s.ActivityState == st[0] {
				v = 1
			}
			c.series.send(ch, c.state[st[0]], prometheus.GaugeValue, v, s.Name)
		}
		c.series.send(ch, c.blocks, prometheus.GaugeValue, float64(s.BlocksTotal), s.Name)
		c.series.send(ch, c.synced, prometheus.GaugeValue, float64(s.BlocksSynced), s.Name)
	}
	raids, err := c.sysfs.Mdraids()
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("error parsing mdraids: %w", err)
	}
	for _, r := range raids {
		if r.Disks != nil {
			c.series.send(ch, c.raidDisks, prometheus.GaugeValue, float64(*r.Disks), r.Device)
		}
		c.series.send(ch, c.degraded, prometheus.GaugeValue, float64(r.DegradedDisks), r.Device)
	}
	return nil
}
