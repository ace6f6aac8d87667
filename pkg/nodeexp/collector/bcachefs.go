package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/bcachefs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// bcachefsCollector reports bcachefs file systems (/sys/fs/bcachefs),
// each of the kernel's event counters as a family of its own.
type bcachefsCollector struct {
	fs                                        bcachefs.FS
	descs                                     descCache
	info, btreeCache, compressed, uncompresed *constmetric.Desc
	errorsTotal, btreeWrites, btreeWriteSize  *constmetric.Desc
	devInfo, bucketSize, buckets, durability  *constmetric.Desc
	ioDone, ioErrors                          *constmetric.Desc
}

// errNoBcachefs: the node lacks what the collector reads; returned on every
// scrape, so built once.
var errNoBcachefs = fmt.Errorf("no bcachefs (/sys/fs/bcachefs): %w", nodeexp.ErrNoData)

func newBcachefsCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := bcachefs.NewFS(cfg.SysPath)
	if err != nil {
		return nil, fmt.Errorf("opening sysfs %q: %w", cfg.SysPath, err)
	}
	d := func(name, help string, labels ...string) *constmetric.Desc {
		return constmetric.NewDesc("node_bcachefs_"+name, help, append([]string{"uuid"}, labels...), nil)
	}
	return &bcachefsCollector{
		fs:             fs,
		info:           d("info", "Filesystem information."),
		btreeCache:     d("btree_cache_size_bytes", "Btree cache memory usage in bytes."),
		compressed:     d("compression_compressed_bytes", "Compressed size by algorithm.", "algorithm"),
		uncompresed:    d("compression_uncompressed_bytes", "Uncompressed size by algorithm.", "algorithm"),
		errorsTotal:    d("errors_total", "Error count by error type.", "error_type"),
		btreeWrites:    d("btree_writes_total", "Number of btree writes by type.", "type"),
		btreeWriteSize: d("btree_write_average_size_bytes", "Average btree write size by type.", "type"),
		devInfo:        d("device_info", "Device information.", "device", "label", "state"),
		bucketSize:     d("device_bucket_size_bytes", "Bucket size in bytes.", "device"),
		buckets:        d("device_buckets", "Total number of buckets.", "device"),
		durability:     d("device_durability", "Device durability setting.", "device"),
		ioDone:         d("device_io_done_bytes_total", "IO bytes by operation type and data type.", "device", "operation", "data_type"),
		ioErrors:       d("device_io_errors_total", "IO errors by error type.", "device", "type"),
	}, nil
}

func (c *bcachefsCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	stats, err := c.fs.Stats()
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errNoBcachefs
	case err != nil:
		return fmt.Errorf("failed to retrieve bcachefs stats: %w", err)
	case len(stats) == 0:
		return fmt.Errorf("no bcachefs file system: %w", nodeexp.ErrNoData)
	}
	for _, s := range stats {
		u := s.UUID
		send(ch, c.info, prometheus.GaugeValue, 1, u)
		send(ch, c.btreeCache, prometheus.GaugeValue, float64(s.BtreeCacheSizeBytes), u)
		for alg, v := range s.Compression {
			send(ch, c.compressed, prometheus.GaugeValue, float64(v.CompressedBytes), u, alg)
			send(ch, c.uncompresed, prometheus.GaugeValue, float64(v.UncompressedBytes), u, alg)
		}
		for typ, v := range s.Errors {
			send(ch, c.errorsTotal, prometheus.CounterValue, float64(v.Count), u, typ)
		}
		for name, v := range s.Counters {
			d := c.descs.get("node_bcachefs_"+metricNameJunk.ReplaceAllString(name, "_")+"_total",
				"Bcachefs counter "+name+" since filesystem creation.", "uuid")
			send(ch, d, prometheus.CounterValue, float64(v.SinceFilesystemCreation), u)
		}
		for typ, v := range s.BtreeWrites {
			send(ch, c.btreeWrites, prometheus.CounterValue, float64(v.Count), u, typ)
			send(ch, c.btreeWriteSize, prometheus.GaugeValue, float64(v.SizeBytes), u, typ)
		}
		for dev, d := range s.Devices {
			if d == nil {
				continue
			}
			send(ch, c.devInfo, prometheus.GaugeValue, 1, u, dev, d.Label, d.State)
			send(ch, c.bucketSize, prometheus.GaugeValue, float64(d.BucketSizeBytes), u, dev)
			send(ch, c.buckets, prometheus.GaugeValue, float64(d.Buckets), u, dev)
			send(ch, c.durability, prometheus.GaugeValue, float64(d.Durability), u, dev)
			for op, byType := range d.IODone {
				for typ, v := range byType {
					send(ch, c.ioDone, prometheus.CounterValue, float64(v), u, dev, op, typ)
				}
			}
			for typ, v := range d.IOErrors {
				send(ch, c.ioErrors, prometheus.CounterValue, float64(v), u, dev, typ)
			}
		}
	}
	return nil
}
