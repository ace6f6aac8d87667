package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// nvmeCollector reports NVMe controllers and namespaces (/sys/class/nvme):
// EBS volumes and instance stores on Nitro instances.
type nvmeCollector struct {
	series                                  seriesCache
	fs                                      sysfs.FS
	sysPath                                 string
	logger                                  *slog.Logger
	info, nsInfo, capacity, size, used, lbs *constmetric.Desc
}

// errNoNVMe: the node lacks what the collector reads; returned on every
// scrape, so built once.
var errNoNVMe = fmt.Errorf("no NVMe devices (/sys/class/nvme): %w", nodeexp.ErrNoData)

func newNVMeCollector(cfg *Config, logger *slog.Logger) (nodeexp.Collector, error) {
	fs, err := sysfs.NewFS(cfg.SysPath)
	if err != nil {
		return nil, fmt.Errorf("opening sysfs %q: %w", cfg.SysPath, err)
	}
	ns := []string{"device", "nsid"}
	return &nvmeCollector{
		fs:      fs,
		sysPath: cfg.SysPath,
		logger:  logger,
		info: constmetric.NewDesc("node_nvme_info", "Non-numeric data from /sys/class/nvme/<device>, value is always 1.",
			[]string{"device", "firmware_revision", "model", "serial", "state", "cntlid"}, nil),
		nsInfo: constmetric.NewDesc("node_nvme_namespace_info", "Information about NVMe namespaces. Value is always 1",
			[]string{"device", "nsid", "ana_state"}, nil),
		capacity: constmetric.NewDesc("node_nvme_namespace_capacity_bytes",
			"Capacity of the NVMe namespace in bytes. Computed as namespace_size * namespace_logical_block_size", ns, nil),
		size: constmetric.NewDesc("node_nvme_namespace_size_bytes",
			"Size of the NVMe namespace in bytes. Available in /sys/class/nvme/<device>/<namespace>/size", ns, nil),
		used: constmetric.NewDesc("node_nvme_namespace_used_bytes",
			"Used space of the NVMe namespace in bytes. Available in /sys/class/nvme/<device>/<namespace>/nuse", ns, nil),
		lbs: constmetric.NewDesc("node_nvme_namespace_logical_block_size_bytes",
			"Logical block size of the NVMe namespace in bytes. Usually 4Kb. Available in /sys/class/nvme/<device>/<namespace>/queue/logical_block_size", ns, nil),
	}, nil
}

func (c *nvmeCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	switch any, err := anyEntry(filepath.Join(c.sysPath, "class/nvme"), except()); {
	case errors.Is(err, os.ErrNotExist):
		return errNoNVMe
	case err == nil && !any:
		return nil
	}
	devices, err := c.fs.NVMeClass()
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errNoNVMe
	case err != nil:
		return fmt.Errorf("couldn't get NVMe class: %w", err)
	}
	for _, d := range devices {
		c.series.send(ch, c.info, prometheus.GaugeValue, 1, d.Name, d.FirmwareRevision, d.Model, d.Serial, d.State, d.ControllerID)
		for _, n := range d.Namespaces {
			// size counts 512-byte sectors, but node_exporter v1.12.1
			// multiplies it by the logical block size (its help says so),
			// and so does nodeexp: the same figure on the same disk. The
			// two agree for 512-byte namespaces, EBS volumes among them.
			size := float64(n.SizeBlocks * n.LogicalBlockSize)
			c.series.send(ch, c.nsInfo, prometheus.GaugeValue, 1, d.Name, n.ID, n.ANAState)
			c.series.send(ch, c.capacity, prometheus.GaugeValue, size, d.Name, n.ID)
			c.series.send(ch, c.size, prometheus.GaugeValue, size, d.Name, n.ID)
			// nuse needs Linux 6.8; without it the series is left out.
			switch used, err := n.UsedBlocks(); {
			case err != nil:
				c.logger.Debug("couldn't read nuse", "device", d.Name, "namespace", n.Name, "err", err)
			case used != nil:
				c.series.send(ch, c.used, prometheus.GaugeValue, float64(*used*n.LogicalBlockSize), d.Name, n.ID)
			}
			c.series.send(ch, c.lbs, prometheus.GaugeValue, float64(n.LogicalBlockSize), d.Name, n.ID)
		}
	}
	return nil
}
