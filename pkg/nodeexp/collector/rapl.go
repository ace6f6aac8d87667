package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// raplCollector reports the energy counters of Intel RAPL power zones
// (/sys/class/powercap): one family per zone name, or one family with a
// rapl_zone label under --collector.rapl.enable-zone-label.
type raplCollector struct {
	fs        sysfs.FS
	sysPath   string
	zoneLabel bool
	withZone  *constmetric.Desc
	descs     descCache
}

// errNoPowercap: the node has no powercap zones (VMs); returned on every
// scrape, so built once.
var errNoPowercap = fmt.Errorf("no powercap zones (/sys/class/powercap): %w", nodeexp.ErrNoData)

func newRaplCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := sysfs.NewFS(cfg.SysPath)
	if err != nil {
		return nil, fmt.Errorf("opening sysfs %q: %w", cfg.SysPath, err)
	}
	return &raplCollector{fs: fs, sysPath: cfg.SysPath, zoneLabel: cfg.RaplZoneLabel,
		withZone: constmetric.NewDesc("node_rapl_joules_total", "Current RAPL value in joules", []string{"index", "path", "rapl_zone"}, nil)}, nil
}

// metricNameJunk is what node_exporter's SanitizeMetricName replaces.
var metricNameJunk = regexp.MustCompile(`_*[^0-9A-Za-z_]+_*`)

func (c *raplCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	if _, err := anyEntry(filepath.Join(c.sysPath, "class/powercap"), except()); errors.Is(err, os.ErrNotExist) {
		return errNoPowercap
	}
	zones, err := sysfs.GetRaplZones(c.fs)
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, os.ErrPermission):
		return fmt.Errorf("no readable powercap zones: %w", errors.Join(nodeexp.ErrNoData, err))
	case err != nil:
		return fmt.Errorf("couldn't get rapl zones: %w", err)
	}
	for _, z := range zones {
		uj, err := z.GetEnergyMicrojoules()
		switch {
		case errors.Is(err, os.ErrPermission):
			// energy_uj is root-only since Linux 5.10 (CVE-2020-8694).
			return fmt.Errorf("rapl zone %s: %w", z.Path, errors.Join(nodeexp.ErrNoData, err))
		case err != nil:
			return fmt.Errorf("rapl zone %s: %w", z.Path, err)
		}
		j := float64(uj) / 1000000.0
		index := strconv.Itoa(z.Index)
		if c.zoneLabel {
			send(ch, c.withZone, prometheus.CounterValue, j, index, z.Path, z.Name)
			continue
		}
		d := c.descs.get("node_rapl_"+metricNameJunk.ReplaceAllString(z.Name, "_")+"_joules_total",
			"Current RAPL "+z.Name+" value in joules", "index", "path")
		send(ch, d, prometheus.CounterValue, j, index, z.Path)
	}
	return nil
}
