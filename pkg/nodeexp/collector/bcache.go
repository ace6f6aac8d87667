package collector

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/bcache"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// bcacheCollector reports bcache cache sets, their backing and cache
// devices (/sys/fs/bcache); the per-cache priority statistics, which make
// the kernel walk every bucket, only under --collector.bcache.priorityStats.
type bcacheCollector struct {
	fs       bcache.FS
	priority bool
	set      [len(bcacheSetFamilies)]*constmetric.Desc
	backing  [len(bcacheBackingFamilies)]*constmetric.Desc
	period   [len(bcachePeriodFamilies)]*constmetric.Desc
	cache    [len(bcacheCacheFamilies)]*constmetric.Desc
}

// metricFamily is a family's name (after its collector's prefix), help
// and type, for collectors that list theirs in tables.
type metricFamily struct {
	name, help string
	counter    bool
}

func (f metricFamily) valueType() prometheus.ValueType {
	if f.counter {
		return prometheus.CounterValue
	}
	return prometheus.GaugeValue
}

var bcacheSetFamilies = [...]metricFamily{
	{"average_key_size_sectors", "Average data per key in the btree (sectors).", false},
	{"btree_cache_size_bytes", "Amount of memory currently used by the btree cache.", false},
	{"cache_available_percent", "Percentage of cache device without dirty data, usable for writeback (may contain clean cached data).", false},
	{"congested", "Congestion.", false},
	{"root_usage_percent", "Percentage of the root btree node in use (tree depth increases if too high).", false},
	{"tree_depth", "Depth of the btree.", false},
	{"active_journal_entries", "Number of journal entries that are newer than the index.", false},
	{"btree_nodes", "Total nodes in the btree.", false},
	{"btree_read_average_duration_seconds", "Average btree read duration.", false},
	{"cache_read_races_total", "Counts instances where while data was being read from the cache, the bucket was reused and invalidated - i.e. where the pointer was stale after the read completed.", true},
}

var bcacheBackingFamilies = [...]metricFamily{
	{"dirty_data_bytes", "Amount of dirty data for this backing device in the cache.", false},
	{"dirty_target_bytes", "Current dirty data target threshold for this backing device in bytes.", false},
	{"writeback_rate", "Current writeback rate for this backing device in bytes.", false},
	{"writeback_rate_proportional_term", "Current result of proportional controller, part of writeback rate", false},
	{"writeback_rate_integral_term", "Current result of integral controller, part of writeback rate", false},
	{"writeback_change", "Last writeback rate change step for this backing device.", false},
}

// bcachePeriodFamilies: the last one, readaheads, is left out when 0 (as
// node_exporter does: newer kernels dropped the counter).
var bcachePeriodFamilies = [...]metricFamily{
	{"bypassed_bytes_total", "Amount of IO (both reads and writes) that has bypassed the cache.", true},
	{"cache_hits_total", "Hits counted per individual IO as bcache sees them.", true},
	{"cache_misses_total", "Misses counted per individual IO as bcache sees them.", true},
	{"cache_bypass_hits_total", "Hits for IO intended to skip the cache.", true},
	{"cache_bypass_misses_total", "Misses for IO intended to skip the cache.", true},
	{"cache_miss_collisions_total", "Instances where data insertion from cache miss raced with write (data already present).", true},
	{"cache_readaheads_total", "Count of times readahead occurred.", true},
}

var bcacheCacheFamilies = [...]metricFamily{
	{"io_errors", "Number of errors that have occurred, decayed by io_error_halflife.", false},
	{"metadata_written_bytes_total", "Sum of all non data writes (btree writes and all other metadata).", true},
	{"written_bytes_total", "Sum of all data that has been written to the cache.", true},
	{"priority_stats_unused_percent", "The percentage of the cache that doesn't contain any data.", false},
	{"priority_stats_metadata_percent", "Bcache's metadata overhead.", false},
}

func newBcacheCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := bcache.NewFS(cfg.SysPath)
	if err != nil {
		return nil, fmt.Errorf("opening sysfs %q: %w", cfg.SysPath, err)
	}
	c := &bcacheCollector{fs: fs, priority: cfg.BcachePriorityStats}
	d := func(f metricFamily, labels ...string) *constmetric.Desc {
		return constmetric.NewDesc("node_bcache_"+f.name, f.help, append([]string{"uuid"}, labels...), nil)
	}
	for i, f := range bcacheSetFamilies {
		c.set[i] = d(f)
	}
	for i, f := range bcacheBackingFamilies {
		c.backing[i] = d(f, "backing_device")
	}
	for i, f := range bcachePeriodFamilies {
		c.period[i] = d(f, "backing_device")
	}
	for i, f := range bcacheCacheFamilies {
		c.cache[i] = d(f, "cache_device")
	}
	return c, nil
}

func (c *bcacheCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	var stats []*bcache.Stats
	var err error
	if c.priority {
		stats, err = c.fs.Stats()
	} else {
		stats, err = c.fs.StatsWithoutPriority()
	}
	if err != nil {
		return fmt.Errorf("failed to retrieve bcache stats: %w", err)
	}
	for _, s := range stats {
		b := s.Bcache
		for i, v := range [len(bcacheSetFamilies)]float64{float64(b.AverageKeySize), float64(b.BtreeCacheSize), float64(b.CacheAvailablePercent),
			float64(b.Congested), float64(b.RootUsagePercent), float64(b.TreeDepth), float64(b.Internal.ActiveJournalEntries),
			float64(b.Internal.BtreeNodes), float64(b.Internal.BtreeReadAverageDurationNanoSeconds) * 1e-9, float64(b.Internal.CacheReadRaces)} {
			send(ch, c.set[i], bcacheSetFamilies[i].valueType(), v, s.Name)
		}
		for _, d := range s.Bdevs {
			w := d.WritebackRateDebug
			for i, v := range [len(bcacheBackingFamilies)]float64{float64(d.DirtyData), float64(w.Target), float64(w.Rate),
				float64(w.Proportional), float64(w.Integral), float64(w.Change)} {
				send(ch, c.backing[i], bcacheBackingFamilies[i].valueType(), v, s.Name, d.Name)
			}
			t := d.Total
			for i, v := range [len(bcachePeriodFamilies)]uint64{t.Bypassed, t.CacheHits, t.CacheMisses, t.CacheBypassHits,
				t.CacheBypassMisses, t.CacheMissCollisions, t.CacheReadaheads} {
				if i == len(bcachePeriodFamilies)-1 && v == 0 {
					continue
				}
				send(ch, c.period[i], prometheus.CounterValue, float64(v), s.Name, d.Name)
			}
		}
		for _, cd := range s.Caches {
			values := []float64{float64(cd.IOErrors), float64(cd.MetadataWritten), float64(cd.Written)}
			if c.priority {
				values = append(values, float64(cd.Priority.UnusedPercent), float64(cd.Priority.MetadataPercent))
			}
			for i, v := range values {
				send(ch, c.cache[i], bcacheCacheFamilies[i].valueType(), v, s.Name, cd.Name)
			}
		}
	}
	return nil
}
