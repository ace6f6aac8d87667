package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// udpQueuesCollector reports the memory queued in UDP sockets
// (/proc/net/udp and udp6), which grows when a DNS cache or similar
// consumer falls behind.
type udpQueuesCollector struct {
	series seriesCache // label pairs of the series, across scrapes
	fs     procfs.FS
	desc   *constmetric.Desc
}

func newUDPQueuesCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := procfs.NewFS(cfg.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("opening procfs %q: %w", cfg.ProcPath, err)
	}
	return &udpQueuesCollector{fs: fs, desc: constmetric.NewDesc("node_udp_queues",
		"Number of allocated memory in the kernel for UDP datagrams in bytes.", []string{"ip", "queue"}, nil)}, nil
}

func (c *udpQueuesCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	found := false
	for _, v := range []struct {
		ip   string
		read func() (*procfs.NetUDPSummary, error)
	}{{"v4", c.fs.NetUDPSummary}, {"v6", c.fs.NetUDP6Summary}} {
		s, err := v.read()
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("couldn't get udp%s queue stats: %w", v.ip, err)
		}
		found = true
		c.series.send(ch, c.desc, prometheus.GaugeValue, float64(s.TxQueueLength), v.ip, "tx")
		c.series.send(ch, c.desc, prometheus.GaugeValue, float64(s.RxQueueLength), v.ip, "rx")
	}
	if !found {
		return fmt.Errorf("no /proc/net/udp: %w", nodeexp.ErrNoData)
	}
	return nil
}
