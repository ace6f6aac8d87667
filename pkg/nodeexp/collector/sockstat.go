package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// sockstatCollector reports /proc/net/sockstat and sockstat6.
type sockstatCollector struct {
	series   seriesCache // label pairs of the series, across scrapes
	fs       procfs.FS
	pageSize int
	used     *constmetric.Desc
	descs    descCache

	// byState holds the descriptors by protocol and state, so that a
	// scrape does not format each one's name and help to look it up.
	mu      sync.Mutex
	byState map[[2]string]*constmetric.Desc
}

func newSockstatCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := procfs.NewFS(cfg.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("opening procfs %q: %w", cfg.ProcPath, err)
	}
	return &sockstatCollector{
		fs:       fs,
		pageSize: os.Getpagesize(),
		used:     constmetric.NewDesc("node_sockstat_sockets_used", "Number of IPv4 sockets in use.", nil, nil),
	}, nil
}

func (c *sockstatCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	s4, err := c.fs.NetSockstat()
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("failed to get IPv4 sockstat data: %w", err)
	default:
		if s4.Used != nil {
			c.series.send(ch, c.used, prometheus.GaugeValue, float64(*s4.Used))
		}
		c.protocols(ch, s4)
	}
	s6, err := c.fs.NetSockstat6()
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("failed to get IPv6 sockstat data: %w", err)
	default:
		c.protocols(ch, s6)
	}
	return nil
}

func (c *sockstatCollector) protocols(ch *nodeexp.Sink, s *procfs.NetSockstat) {
	for _, p := range s.Protocols {
		emit := func(state string, v *int) {
			if v == nil || !validMetricSuffix(p.Protocol) {
				return
			}
			c.mu.Lock()
			d := c.byState[[2]string{p.Protocol, state}]
			if d == nil {
				d = c.descs.get("node_sockstat_"+p.Protocol+"_"+state,
					fmt.Sprintf("Number of %s sockets in state %s.", p.Protocol, state))
				if c.byState == nil {
					c.byState = make(map[[2]string]*constmetric.Desc)
				}
				c.byState[[2]string{p.Protocol, state}] = d
			}
			c.mu.Unlock()
			c.series.send(ch, d, prometheus.GaugeValue, float64(*v))
		}
		emit("inuse", &p.InUse)
		emit("orphan", p.Orphan)
		emit("tw", p.TW)
		emit("alloc", p.Alloc)
		emit("mem", p.Mem)
		emit("memory", p.Memory)
		// mem counts pages; node_exporter also exports it in bytes.
		if p.Mem != nil {
			b := *p.Mem * c.pageSize
			emit("mem_bytes", &b)
		}
	}
}
