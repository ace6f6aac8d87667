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

// nfsdCollector reports the NFS server's statistics (/proc/net/rpc/nfsd).
type nfsdCollector struct {
	series   seriesCache
	fs       nfs.FS
	values   [11]*constmetric.Desc // in the order of Update's values
	packets  *constmetric.Desc
	errors   *constmetric.Desc
	requests *constmetric.Desc
}

// The procedures node_exporter reports per NFS version: fields of procfs'
// V2Stats, V3Stats and V4Ops.
var (
	nfsdV2Methods = []string{"GetAttr", "SetAttr", "Root", "Lookup", "ReadLink", "Read", "WrCache", "Write", "Create", "Remove",
		"Rename", "Link", "SymLink", "MkDir", "RmDir", "ReadDir", "FsStat"}
	nfsdV3Methods = []string{"GetAttr", "SetAttr", "Lookup", "Access", "ReadLink", "Read", "Write", "Create", "MkDir", "SymLink",
		"MkNod", "Remove", "RmDir", "Rename", "Link", "ReadDir", "ReadDirPlus", "FsStat", "FsInfo", "PathConf", "Commit"}
	nfsdV4Methods = []string{"Access", "Close", "Commit", "Create", "DelegPurge", "DelegReturn", "GetAttr", "GetFH", "Link", "Lock",
		"Lockt", "Locku", "Lookup", "LookupRoot", "Nverify", "Open", "OpenAttr", "OpenConfirm", "OpenDgrd", "PutFH", "Read",
		"ReadDir", "ReadLink", "Remove", "Rename", "Renew", "RestoreFH", "SaveFH", "SecInfo", "SetAttr", "SetClientID",
		"SetClientIDConfirm", "Verify", "Write", "RelLockOwner"}
)

var nfsdValues = [11]struct {
	name, help string
	gauge      bool
}{
	{"reply_cache_hits_total", "Total number of NFSd Reply Cache hits (client lost server response).", false},
	{"reply_cache_misses_total", "Total number of NFSd Reply Cache an operation that requires caching (idempotent).", false},
	{"reply_cache_nocache_total", "Total number of NFSd Reply Cache non-idempotent operations (rename/delete/…).", false},
	{"file_handles_stale_total", "Total number of NFSd stale file handles", false},
	{"disk_bytes_read_total", "Total NFSd bytes read.", false},
	{"disk_bytes_written_total", "Total NFSd bytes written.", false},
	{"server_threads", "Total number of NFSd kernel threads that are running.", true},
	{"read_ahead_cache_size_blocks", "How large the read ahead cache is in blocks.", true},
	{"read_ahead_cache_not_found_total", "Total number of NFSd read ahead cache not found.", false},
	{"connections_total", "Total number of NFSd TCP connections.", false},
	{"server_rpcs_total", "Total number of NFSd RPCs.", false},
}

// errNoNFSServer: the node lacks what the collector reads; returned on every
// scrape, so built once.
var errNoNFSServer = fmt.Errorf("no NFS server statistics (/proc/net/rpc/nfsd): %w", nodeexp.ErrNoData)

func newNFSdCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := nfs.NewFS(cfg.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("opening procfs %q: %w", cfg.ProcPath, err)
	}
	c := &nfsdCollector{
		fs:       fs,
		packets:  constmetric.NewDesc("node_nfsd_packets_total", "Total NFSd network packets (sent+received) by protocol type.", []string{"proto"}, nil),
		errors:   constmetric.NewDesc("node_nfsd_rpc_errors_total", "Total number of NFSd RPC errors by error type.", []string{"error"}, nil),
		requests: constmetric.NewDesc("node_nfsd_requests_total", "Total number NFSd Requests by method and protocol.", []string{"proto", "method"}, nil),
	}
	for i, v := range nfsdValues {
		c.values[i] = constmetric.NewDesc("node_nfsd_"+v.name, v.help, nil, nil)
	}
	return c, nil
}

func (c *nfsdCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	s, err := c.fs.ServerRPCStats()
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errNoNFSServer
	case err != nil:
		return fmt.Errorf("couldn't get NFS server statistics: %w", err)
	}
	for i, v := range [11]uint64{s.ReplyCache.Hits, s.ReplyCache.Misses, s.ReplyCache.NoCache, s.FileHandles.Stale,
		s.InputOutput.Read, s.InputOutput.Write, s.Threads.Threads, s.ReadAheadCache.CacheSize, s.ReadAheadCache.NotFound,
		s.Network.TCPConnect, s.ServerRPC.RPCCount} {
		t := prometheus.CounterValue
		if nfsdValues[i].gauge {
			t = prometheus.GaugeValue
		}
		c.series.send(ch, c.values[i], t, float64(v))
	}
	c.series.send(ch, c.packets, prometheus.CounterValue, float64(s.Network.UDPCount), "udp")
	c.series.send(ch, c.packets, prometheus.CounterValue, float64(s.Network.TCPCount), "tcp")
	c.series.send(ch, c.errors, prometheus.CounterValue, float64(s.ServerRPC.BadFmt), "fmt")
	c.series.send(ch, c.errors, prometheus.CounterValue, float64(s.ServerRPC.BadAuth), "auth")
	c.series.send(ch, c.errors, prometheus.CounterValue, float64(s.ServerRPC.BadcInt), "cInt")
	for _, p := range []struct {
		proto   string
		stats   any
		methods []string
	}{{"2", &s.V2Stats, nfsdV2Methods}, {"3", &s.V3Stats, nfsdV3Methods}, {"4", &s.V4Ops, nfsdV4Methods}} {
		v := reflect.ValueOf(p.stats).Elem()
		for _, m := range p.methods {
			c.series.send(ch, c.requests, prometheus.CounterValue, float64(v.FieldByName(m).Uint()), p.proto, m)
		}
	}
	c.series.send(ch, c.requests, prometheus.CounterValue, float64(s.WdelegGetattr), "4", "WdelegGetattr")
	return nil
}
