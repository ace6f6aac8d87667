package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// conntrackCollector reports netfilter connection tracking usage; on a
// Kubernetes node a full table drops new connections, hence the node-mixin
// alert on entries/limit.
type conntrackCollector struct {
	series     seriesCache // label pairs of the series, across scrapes
	fs         procfs.FS
	procPath   string
	cur, limit *constmetric.Desc
	stats      [8]*constmetric.Desc
}

var conntrackStatNames = [8][2]string{
	{"found", "Number of searched entries which were successful."},
	{"invalid", "Number of packets seen which can not be tracked."},
	{"ignore", "Number of packets seen which are already connected to a conntrack entry."},
	{"insert", "Number of entries inserted into the list."},
	{"insert_failed", "Number of entries for which list insertion was attempted but failed."},
	{"drop", "Number of packets dropped due to conntrack failure."},
	{"early_drop", "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached."},
	{"search_restart", "Number of conntrack table lookups which had to be restarted due to hashtable resizes."},
}

func newConntrackCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := procfs.NewFS(cfg.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("opening procfs %q: %w", cfg.ProcPath, err)
	}
	c := &conntrackCollector{
		fs:       fs,
		procPath: cfg.ProcPath,
		cur:      constmetric.NewDesc("node_nf_conntrack_entries", "Number of currently allocated flow entries for connection tracking.", nil, nil),
		limit:    constmetric.NewDesc("node_nf_conntrack_entries_limit", "Maximum size of connection tracking table.", nil, nil),
	}
	for i, n := range conntrackStatNames {
		c.stats[i] = constmetric.NewDesc("node_nf_conntrack_stat_"+n[0], n[1], nil, nil)
	}
	return c, nil
}

func (c *conntrackCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	cur, err := readUint(filepath.Join(c.procPath, "sys/net/netfilter/nf_conntrack_count"))
	if err != nil {
		return conntrackErr(err)
	}
	limit, err := readUint(filepath.Join(c.procPath, "sys/net/netfilter/nf_conntrack_max"))
	if err != nil {
		return conntrackErr(err)
	}
	c.series.send(ch, c.cur, prometheus.GaugeValue, float64(cur))
	c.series.send(ch, c.limit, prometheus.GaugeValue, float64(limit))
	entries, err := c.fs.ConntrackStat()
	if err != nil {
		return conntrackErr(err)
	}
	var sum [8]uint64
	for _, e := range entries {
		for i, v := range [8]uint64{e.Found, e.Invalid, e.Ignore, e.Insert, e.InsertFailed, e.Drop, e.EarlyDrop, e.SearchRestart} {
			sum[i] += v
		}
	}
	for i, v := range sum {
		c.series.send(ch, c.stats[i], prometheus.GaugeValue, float64(v))
	}
	return nil
}

func conntrackErr(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("conntrack probably not loaded: %w", errors.Join(nodeexp.ErrNoData, err))
	}
	return fmt.Errorf("failed to retrieve conntrack stats: %w", err)
}
