package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// ipvsCollector reports IP Virtual Server statistics (/proc/net/ip_vs*):
// kube-proxy in IPVS mode programs every Service there.
type ipvsCollector struct {
	series seriesCache
	fs     procfs.FS
	// labels are the backend labels asked for, in node_exporter's order.
	labels                   []string
	totals                   [5]*constmetric.Desc
	active, inactive, weight *constmetric.Desc
}

// ipvsBackendLabels are the labels --collector.ipvs.backend-labels may
// name, in the order they are reported.
var ipvsBackendLabels = []string{"local_address", "local_port", "remote_address", "remote_port", "proto", "local_mark"}

// parseIPVSLabels turns --collector.ipvs.backend-labels into the labels
// to report, refusing names it does not know.
func parseIPVSLabels(s string) ([]string, error) {
	asked := map[string]bool{}
	for l := range strings.SplitSeq(s, ",") {
		if l != "" {
			asked[l] = true
		}
	}
	var out []string
	for _, l := range ipvsBackendLabels {
		if asked[l] {
			out = append(out, l)
			delete(asked, l)
		}
	}
	if len(asked) > 0 {
		var unknown []string
		for l := range asked {
			unknown = append(unknown, l)
		}
		slices.Sort(unknown)
		return nil, fmt.Errorf("unknown IPVS backend labels: %q", strings.Join(unknown, ", "))
	}
	return out, nil
}

// errNoIPVS: the node lacks what the collector reads; returned on every
// scrape, so built once.
var errNoIPVS = fmt.Errorf("no IPVS on this node (/proc/net/ip_vs_stats): %w", nodeexp.ErrNoData)

func newIPVSCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	labels, err := parseIPVSLabels(cfg.IPVSBackendLabels)
	if err != nil {
		return nil, err
	}
	fs, err := procfs.NewFS(cfg.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("opening procfs %q: %w", cfg.ProcPath, err)
	}
	c := &ipvsCollector{
		fs:       fs,
		labels:   labels,
		active:   constmetric.NewDesc("node_ipvs_backend_connections_active", "The current active connections by local and remote address.", labels, nil),
		inactive: constmetric.NewDesc("node_ipvs_backend_connections_inactive", "The current inactive connections by local and remote address.", labels, nil),
		weight:   constmetric.NewDesc("node_ipvs_backend_weight", "The current backend weight by local and remote address.", labels, nil),
	}
	for i, t := range [5][2]string{
		{"connections_total", "The total number of connections made."},
		{"incoming_packets_total", "The total number of incoming packets."},
		{"outgoing_packets_total", "The total number of outgoing packets."},
		{"incoming_bytes_total", "The total amount of incoming data."},
		{"outgoing_bytes_total", "The total amount of outgoing data."},
	} {
		c.totals[i] = constmetric.NewDesc("node_ipvs_"+t[0], t[1], nil, nil)
	}
	return c, nil
}

func (c *ipvsCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	st, err := c.fs.IPVSStats()
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errNoIPVS
	case err != nil:
		return fmt.Errorf("could not get IPVS stats: %w", err)
	}
	for i, v := range [5]uint64{st.Connections, st.IncomingPackets, st.OutgoingPackets, st.IncomingBytes, st.OutgoingBytes} {
		c.series.send(ch, c.totals[i], prometheus.CounterValue, float64(v))
	}
	backends, err := c.fs.IPVSBackendStatus()
	if err != nil {
		return fmt.Errorf("could not get IPVS backend status: %w", err)
	}
	// Backends that differ only by labels left out are summed.
	type sum struct {
		values                   []string
		active, inactive, weight uint64
	}
	sums := map[string]*sum{}
	var keys []string
	for _, b := range backends {
		values := make([]string, len(c.labels))
		for i, l := range c.labels {
			switch l {
			case "local_address":
				// A firewall-mark service has no address ("<nil>").
				if a := b.LocalAddress.String(); a != "<nil>" {
					values[i] = a
				}
			case "local_port":
				values[i] = strconv.FormatUint(uint64(b.LocalPort), 10)
			case "remote_address":
				values[i] = b.RemoteAddress.String()
			case "remote_port":
				values[i] = strconv.FormatUint(uint64(b.RemotePort), 10)
			case "proto":
				values[i] = b.Proto
			case "local_mark":
				values[i] = b.LocalMark
			}
		}
		key := strings.Join(values, "\xff")
		s := sums[key]
		if s == nil {
			s = &sum{values: values}
			sums[key] = s
			keys = append(keys, key)
		}
		s.active += b.ActiveConn
		s.inactive += b.InactConn
		s.weight += b.Weight
	}
	for _, k := range keys {
		s := sums[k]
		c.series.send(ch, c.active, prometheus.GaugeValue, float64(s.active), s.values...)
		c.series.send(ch, c.inactive, prometheus.GaugeValue, float64(s.inactive), s.values...)
		c.series.send(ch, c.weight, prometheus.GaugeValue, float64(s.weight), s.values...)
	}
	return nil
}
