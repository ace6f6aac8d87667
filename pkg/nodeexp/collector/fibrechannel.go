package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// fibrechannelCollector reports Fibre Channel host ports
// (/sys/class/fc_host).
type fibrechannelCollector struct {
	fs       sysfs.FS
	info     *constmetric.Desc
	counters [len(fibrechannelCounters)]*constmetric.Desc
}

var fibrechannelCounters = [...]struct {
	name, help string
	value      func(*sysfs.FibreChannelCounters) *uint64
}{
	{"dumped_frames_total", "Number of dumped frames", func(c *sysfs.FibreChannelCounters) *uint64 { return c.DumpedFrames }},
	{"error_frames_total", "Number of errors in frames", func(c *sysfs.FibreChannelCounters) *uint64 { return c.ErrorFrames }},
	{"invalid_crc_total", "Invalid Cyclic Redundancy Check count", func(c *sysfs.FibreChannelCounters) *uint64 { return c.InvalidCRCCount }},
	{"rx_frames_total", "Number of frames received", func(c *sysfs.FibreChannelCounters) *uint64 { return c.RXFrames }},
	{"rx_words_total", "Number of words received by host port", func(c *sysfs.FibreChannelCounters) *uint64 { return c.RXWords }},
	{"tx_frames_total", "Number of frames transmitted by host port", func(c *sysfs.FibreChannelCounters) *uint64 { return c.TXFrames }},
	{"tx_words_total", "Number of words transmitted by host port", func(c *sysfs.FibreChannelCounters) *uint64 { return c.TXWords }},
	{"seconds_since_last_reset_total", "Number of seconds since last host port reset", func(c *sysfs.FibreChannelCounters) *uint64 { return c.SecondsSinceLastReset }},
	{"invalid_tx_words_total", "Number of invalid words transmitted by host port", func(c *sysfs.FibreChannelCounters) *uint64 { return c.InvalidTXWordCount }},
	{"link_failure_total", "Number of times the host port link has failed", func(c *sysfs.FibreChannelCounters) *uint64 { return c.LinkFailureCount }},
	{"loss_of_sync_total", "Number of failures on either bit or transmission word boundaries", func(c *sysfs.FibreChannelCounters) *uint64 { return c.LossOfSyncCount }},
	{"loss_of_signal_total", "Number of times signal has been lost", func(c *sysfs.FibreChannelCounters) *uint64 { return c.LossOfSignalCount }},
	{"nos_total", "Number Not_Operational Primitive Sequence received by host port", func(c *sysfs.FibreChannelCounters) *uint64 { return c.NosCount }},
	{"fcp_packet_aborts_total", "Number of aborted packets", func(c *sysfs.FibreChannelCounters) *uint64 { return c.FCPPacketAborts }},
}

// errNoFibreChannel: the node lacks what the collector reads; returned on every
// scrape, so built once.
var errNoFibreChannel = fmt.Errorf("no fibre channel hosts (/sys/class/fc_host): %w", nodeexp.ErrNoData)

func newFibrechannelCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := sysfs.NewFS(cfg.SysPath)
	if err != nil {
		return nil, fmt.Errorf("opening sysfs %q: %w", cfg.SysPath, err)
	}
	c := &fibrechannelCollector{fs: fs, info: constmetric.NewDesc("node_fibrechannel_info",
		"Non-numeric data from /sys/class/fc_host/<host>, value is always 1.",
		[]string{"fc_host", "speed", "port_state", "port_type", "port_id", "port_name", "fabric_name", "symbolic_name", "supported_classes", "supported_speeds", "dev_loss_tmo"}, nil)}
	for i, f := range fibrechannelCounters {
		c.counters[i] = constmetric.NewDesc("node_fibrechannel_"+f.name, f.help, []string{"fc_host"}, nil)
	}
	return c, nil
}

func (c *fibrechannelCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	hosts, err := c.fs.FibreChannelClass()
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errNoFibreChannel
	case err != nil:
		return fmt.Errorf("couldn't get fibre channel class: %w", err)
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	for _, h := range hosts {
		name := str(h.Name)
		send(ch, c.info, prometheus.GaugeValue, 1, name, str(h.Speed), str(h.PortState), str(h.PortType), str(h.PortID), str(h.PortName),
			str(h.FabricName), str(h.SymbolicName), str(h.SupportedClasses), str(h.SupportedSpeeds), str(h.DevLossTMO))
		if h.Counters == nil {
			continue
		}
		for i, f := range fibrechannelCounters {
			// All ones: the driver does not keep this counter.
			if v := f.value(h.Counters); v != nil && *v != math.MaxUint64 {
				send(ch, c.counters[i], prometheus.CounterValue, float64(*v), name)
			}
		}
	}
	return nil
}
