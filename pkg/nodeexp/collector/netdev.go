package collector

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// netdevCollector reports per-interface traffic from /proc/net/dev (read in
// the host's network namespace when nodeexp runs with hostNetwork), with
// node_exporter's legacy names, or its detailed ones under
// --collector.netdev.enable-detailed-metrics. receive_nohandler is not in
// /proc/net/dev, so it comes from sysfs statistics when present (as
// node_exporter's default netlink mode reports it).
type netdevCollector struct {
	series    seriesCache // label pairs of the series, across scrapes
	fs        procfs.FS
	sysPath   string
	devices   deviceFilter
	descs     [17]*constmetric.Desc
	withAlias [17]*constmetric.Desc // with the ifalias label
	// Options: --collector.netdev.label-ifalias and address-info.
	ifAlias, addressInfo bool
	address              *constmetric.Desc
}

var netdevNames = [17]string{
	"receive_bytes", "receive_packets", "receive_errs", "receive_drop", "receive_fifo", "receive_frame",
	"receive_compressed", "receive_multicast", "receive_nohandler",
	"transmit_bytes", "transmit_packets", "transmit_errs", "transmit_drop", "transmit_fifo", "transmit_colls",
	"transmit_carrier", "transmit_compressed",
}

// netdevDetailedNames are the names of the same counters without
// node_exporter's legacy renaming.
var netdevDetailedNames = map[string]string{
	"receive_errs": "receive_errors", "receive_drop": "receive_dropped",
	"transmit_errs": "transmit_errors", "transmit_drop": "transmit_dropped",
}

func newNetdevCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := procfs.NewFS(cfg.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("opening procfs %q: %w", cfg.ProcPath, err)
	}
	devices, err := newDeviceFilter(cfg.NetdevDeviceInclude, cfg.NetdevDeviceExclude)
	if err != nil {
		return nil, fmt.Errorf("compiling the netdev device filters: %w", err)
	}
	c := &netdevCollector{fs: fs, sysPath: cfg.SysPath, devices: devices, ifAlias: cfg.NetdevLabelIfAlias, addressInfo: cfg.NetdevAddressInfo,
		address: constmetric.NewDesc("node_network_address_info", "node network address by device", []string{"device", "address", "netmask", "scope"}, nil)}
	for i, n := range netdevNames {
		if d, ok := netdevDetailedNames[n]; ok && cfg.NetdevDetailedMetrics {
			n = d
		}
		c.descs[i] = constmetric.NewDesc("node_network_"+n+"_total", "Network device statistic "+n+".", []string{"device"}, nil)
		c.withAlias[i] = constmetric.NewDesc("node_network_"+n+"_total", "Network device statistic "+n+".", []string{"device", "ifalias"}, nil)
	}
	return c, nil
}

func (c *netdevCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	nd, err := c.fs.NetDev()
	if err != nil {
		return fmt.Errorf("couldn't get netstats: %w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(nd)) {
		if c.devices.ignored(name) {
			continue
		}
		l := nd[name]
		vals := [17]float64{
			float64(l.RxBytes), float64(l.RxPackets), float64(l.RxErrors), float64(l.RxDropped), float64(l.RxFIFO), float64(l.RxFrame),
			float64(l.RxCompressed), float64(l.RxMulticast), -1,
			float64(l.TxBytes), float64(l.TxPackets), float64(l.TxErrors), float64(l.TxDropped), float64(l.TxFIFO), float64(l.TxCollisions),
			float64(l.TxCarrier), float64(l.TxCompressed),
		}
		if v, err := readUint(filepath.Join(c.sysPath, "class/net", name, "statistics/rx_nohandler")); err == nil {
			vals[8] = float64(v)
		}
		var alias string
		if c.ifAlias {
			if b, err := readString(filepath.Join(c.sysPath, "class/net", name, "ifalias")); err == nil {
				alias = strings.ToValidUTF8(strings.TrimSpace(b), "\uFFFD")
			}
		}
		for i, v := range vals {
			if v < 0 {
				continue
			}
			if c.ifAlias {
				c.series.send(ch, c.withAlias[i], prometheus.CounterValue, v, name, alias)
			} else {
				c.series.send(ch, c.descs[i], prometheus.CounterValue, v, name)
			}
		}
	}
	if c.addressInfo {
		return c.updateAddresses(ch)
	}
	return nil
}

// updateAddresses reports the addresses of this network namespace's
// interfaces (node_exporter asks the kernel, not --path.procfs, as here).
func (c *netdevCollector) updateAddresses(ch *nodeexp.Sink) error {
	ifaces, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("could not get network interfaces: %w", err)
	}
	for _, iface := range ifaces {
		if c.devices.ignored(iface.Name) {
			continue
		}
		addrs, _ := iface.Addrs()
		for _, a := range addrs {
			ip, ipNet, err := net.ParseCIDR(a.String())
			if err != nil {
				continue
			}
			size, _ := ipNet.Mask.Size()
			c.series.send(ch, c.address, prometheus.GaugeValue, 1, iface.Name, ip.String(), strconv.Itoa(size), addressScope(ip))
		}
	}
	return nil
}

func addressScope(ip net.IP) string {
	switch {
	case ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast():
		return "link-local"
	case ip.IsInterfaceLocalMulticast():
		return "interface-local"
	case ip.IsGlobalUnicast():
		return "global"
	}
	return ""
}
