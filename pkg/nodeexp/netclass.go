package nodeexp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"
	"golang.org/x/sys/unix"
)

// netclassCollector reports interface properties from /sys/class/net. Only
// interfaces that are not ignored are read, since each costs ~25 file reads.
type netclassCollector struct {
	fs      sysfs.FS
	sysPath string
	ignore  *regexp.Regexp
	logger  *slog.Logger
	up      *prometheus.Desc
	info    *prometheus.Desc
	descs   descCache
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
		fs:      fs,
		sysPath: cfg.SysPath,
		ignore:  re,
		logger:  logger,
		up:      prometheus.NewDesc("node_network_up", "Value is 1 if operstate is 'up', 0 otherwise.", []string{"device"}, nil),
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
		i, err := c.readIface(dev)
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

// readIface reads the attributes node_exporter reports, and only those,
// with openat(2) relative to the interface's directory: sysfs'
// NetClassByIface reads every attribute through os.Open, and was a quarter
// of a scrape's CPU on a node with a few interfaces.
func (c *netclassCollector) readIface(dev string) (*sysfs.NetClassIface, error) {
	dir := filepath.Join(c.sysPath, "class/net", dev)
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(dfd)
	var buf [256]byte
	str := func(name string) string {
		fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return ""
		}
		defer unix.Close(fd)
		n, err := unix.Read(fd, buf[:])
		if err != nil || n < 0 {
			// Some attributes fail to read by design (speed of a
			// link that is down: EINVAL).
			return ""
		}
		return strings.ToValidUTF8(strings.TrimSpace(string(buf[:n])), "\uFFFD")
	}
	num := func(name string) *int64 {
		s := str(name)
		if s == "" {
			return nil
		}
		v, err := strconv.ParseInt(s, 0, 64) // flags is hexadecimal ("0x1003")
		if err != nil {
			return nil
		}
		return &v
	}
	i := &sysfs.NetClassIface{
		Name:             dev,
		AddrAssignType:   num("addr_assign_type"),
		Address:          str("address"),
		Broadcast:        str("broadcast"),
		Carrier:          num("carrier"),
		CarrierChanges:   num("carrier_changes"),
		CarrierUpCount:   num("carrier_up_count"),
		CarrierDownCount: num("carrier_down_count"),
		DevID:            num("dev_id"),
		Dormant:          num("dormant"),
		Duplex:           str("duplex"),
		Flags:            num("flags"),
		IfAlias:          str("ifalias"),
		IfIndex:          num("ifindex"),
		IfLink:           num("iflink"),
		LinkMode:         num("link_mode"),
		MTU:              num("mtu"),
		NameAssignType:   num("name_assign_type"),
		NetDevGroup:      num("netdev_group"),
		OperState:        str("operstate"),
		Speed:            num("speed"),
		TxQueueLen:       num("tx_queue_len"),
		Type:             num("type"),
	}
	return i, nil
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
