package collector

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// netdevCollector reports per-interface traffic from /proc/net/dev (read in
// the host's network namespace when nodeexp runs with hostNetwork), with
// node_exporter's legacy names. receive_nohandler is not in /proc/net/dev,
// so it comes from sysfs statistics when present.
type netdevCollector struct {
	series  seriesCache // label pairs of the series, across scrapes
	fs      procfs.FS
	sysPath string
	devices deviceFilter
	descs   [17]*constmetric.Desc
}

var netdevNames = [17]string{
	"receive_bytes", "receive_packets", "receive_errs", "receive_drop", "receive_fifo", "receive_frame",
	"receive_compressed", "receive_multicast", "receive_nohandler",
	"transmit_bytes", "transmit_packets", "transmit_errs", "transmit_drop", "transmit_fifo", "transmit_colls",
	"transmit_carrier", "transmit_compressed",
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
	c := &netdevCollector{fs: fs, sysPath: cfg.SysPath, devices: devices}
	for i, n := range netdevNames {
		c.descs[i] = constmetric.NewDesc("node_network_"+n+"_total", "Network device statistic "+n+".", []string{"device"}, nil)
	}
	return c, nil
}

func (c *netdevCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
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
		for i, v := range vals {
			if v < 0 {
				continue
			}
			c.series.send(ch, c.descs[i], prometheus.CounterValue, v, name)
		}
	}
	return nil
}
