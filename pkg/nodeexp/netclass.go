package nodeexp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"
)

// netclassCollector reports interface properties from /sys/class/net. Only
// interfaces that are not ignored are read, since each costs ~25 file reads.
type netclassCollector struct {
	fs     sysfs.FS
	ignore *regexp.Regexp
	logger *slog.Logger
	up     *prometheus.Desc
	info   *prometheus.Desc
	descs  descCache
}

func newNetclassCollector(cfg *Config, logger *slog.Logger) (Collector, error) {
	fs, err := sysfs.NewFS(cfg.SysPath)
	if err != nil {
		return nil, fmt.Errorf("opening sysfs %q: %w", cfg.SysPath, err)
	}
	re, err := regexp.Compile(cfg.NetclassIgnoredDevices)
	if err != nil {
		return nil, fmt.Errorf("compiling netclass ignored-devices: %w", err)
	}
	return &netclassCollector{
		fs:     fs,
		ignore: re,
		logger: logger,
		up:     prometheus.NewDesc("node_network_up", "Value is 1 if operstate is 'up', 0 otherwise.", []string{"device"}, nil),
		info: prometheus.NewDesc("node_network_info", "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
			[]string{"device", "address", "broadcast", "duplex", "operstate", "adminstate", "ifalias"}, nil),
	}, nil
}

func (c *netclassCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	devs, err := c.fs.NetClassDevices()
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("could not read netclass: %w", errors.Join(ErrNoData, err))
	}
	if err != nil {
		return fmt.Errorf("could not get net class info: %w", err)
	}
	for _, dev := range devs {
		if c.ignore.MatchString(dev) {
			continue
		}
		i, err := c.fs.NetClassByIface(dev)
		if err != nil {
			// The interface can vanish between listing and reading
			// (pods come and go); that is not a failed scrape.
			c.logger.Debug("could not read interface", "device", dev, "err", err)
			continue
		}
		up := 0.0
		if i.OperState == "up" {
			up = 1
		}
		send(ch, c.up, prometheus.GaugeValue, up, i.Name)
		send(ch, c.info, prometheus.GaugeValue, 1, i.Name, i.Address, i.Broadcast, i.Duplex, i.OperState, adminState(i.Flags), i.IfAlias)
		prop := func(name string, v *int64, t prometheus.ValueType) {
			if v == nil {
				return
			}
			d := c.descs.get("node_network_"+name, "Network device property: "+name, "device")
			send(ch, d, t, float64(*v), i.Name)
		}
		g, cnt := prometheus.GaugeValue, prometheus.CounterValue
		prop("address_assign_type", i.AddrAssignType, g)
		prop("carrier", i.Carrier, g)
		prop("carrier_changes_total", i.CarrierChanges, cnt)
		prop("carrier_up_changes_total", i.CarrierUpCount, cnt)
		prop("carrier_down_changes_total", i.CarrierDownCount, cnt)
		prop("device_id", i.DevID, g)
		prop("dormant", i.Dormant, g)
		prop("flags", i.Flags, g)
		prop("iface_id", i.IfIndex, g)
		prop("iface_link", i.IfLink, g)
		prop("iface_link_mode", i.LinkMode, g)
		prop("mtu_bytes", i.MTU, g)
		prop("name_assign_type", i.NameAssignType, g)
		prop("net_dev_group", i.NetDevGroup, g)
		if i.Speed != nil {
			// sysfs reports Mbit/s; node_exporter exports bytes/s, and
			// (by default) also the -1 "unknown" speed as -125000.
			b := *i.Speed * 1000 * 1000 / 8
			prop("speed_bytes", &b, g)
		}
		prop("transmit_queue_length", i.TxQueueLen, g)
		prop("protocol_type", i.Type, g)
	}
	return nil
}

func adminState(flags *int64) string {
	switch {
	case flags == nil:
		return "unknown"
	case *flags&int64(net.FlagUp) != 0:
		return "up"
	default:
		return "down"
	}
}
