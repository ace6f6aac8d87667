package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/nfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// nfsCollector reports the NFS client's RPC statistics
// (/proc/net/rpc/nfs): EFS mounts are NFS 4.1 mounts.
type nfsCollector struct {
	series                                     seriesCache
	fs                                         nfs.FS
	packets, conns, rpcs, retrans, authRefresh *constmetric.Desc
	requests                                   *constmetric.Desc
}

// errNoNFSClient: the node lacks what the collector reads; returned on every
// scrape, so built once.
var errNoNFSClient = fmt.Errorf("no NFS client statistics (/proc/net/rpc/nfs): %w", nodeexp.ErrNoData)

func newNFSCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := nfs.NewFS(cfg.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("opening procfs %q: %w", cfg.ProcPath, err)
	}
	d := func(name, help string, labels ...string) *constmetric.Desc {
		return constmetric.NewDesc("node_nfs_"+name, help, labels, nil)
	}
	return &nfsCollector{
		fs:          fs,
		packets:     d("packets_total", "Total NFSd network packets (sent+received) by protocol type.", "protocol"),
		conns:       d("connections_total", "Total number of NFSd TCP connections."),
		rpcs:        d("rpcs_total", "Total number of RPCs performed."),
		retrans:     d("rpc_retransmissions_total", "Number of RPC transmissions performed."),
		authRefresh: d("rpc_authentication_refreshes_total", "Number of RPC authentication refreshes performed."),
		requests:    d("requests_total", "Number of NFS procedures invoked.", "proto", "method"),
	}, nil
}

func (c *nfsCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	s, err := c.fs.ClientRPCStats()
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errNoNFSClient
	case err != nil:
		return fmt.Errorf("couldn't get NFS client statistics: %w", err)
	}
	c.series.send(ch, c.packets, prometheus.CounterValue, float64(s.Network.UDPCount), "udp")
	c.series.send(ch, c.packets, prometheus.CounterValue, float64(s.Network.TCPCount), "tcp")
	c.series.send(ch, c.conns, prometheus.CounterValue, float64(s.Network.TCPConnect))
	c.series.send(ch, c.rpcs, prometheus.CounterValue, float64(s.ClientRPC.RPCCount))
	c.series.send(ch, c.retrans, prometheus.CounterValue, float64(s.ClientRPC.Retransmissions))
	c.series.send(ch, c.authRefresh, prometheus.CounterValue, float64(s.ClientRPC.AuthRefreshes))
	// Every procedure procfs knows, named after its field, as
	// node_exporter names them.
	for _, p := range []struct {
		proto string
		stats any
	}{{"2", &s.V2Stats}, {"3", &s.V3Stats}, {"4", &s.ClientV4Stats}} {
		v := reflect.ValueOf(p.stats).Elem()
		for i := range v.NumField() {
			c.series.send(ch, c.requests, prometheus.CounterValue, float64(v.Field(i).Uint()), p.proto, v.Type().Field(i).Name)
		}
	}
	return nil
}
