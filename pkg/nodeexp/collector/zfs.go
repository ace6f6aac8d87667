package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// zfsCollector reports OpenZFS's kstats (/proc/spl/kstat/zfs): the
// module-wide statistics, one untyped family per kstat as node_exporter
// names them, and per pool its I/O, datasets and state. procfs has no
// reader for these files; their format is the SPL's "name type data"
// table.
type zfsCollector struct {
	base   string // <procfs>/spl/kstat/zfs
	logger *slog.Logger
	descs  descCache
	state  *constmetric.Desc
}

// zfsSubsystems maps each family prefix to its kstat file.
var zfsSubsystems = map[string]string{
	"zfs_abd":         "abdstats",
	"zfs_arc":         "arcstats",
	"zfs_dbuf":        "dbufstats",
	"zfs_dmu_tx":      "dmu_tx",
	"zfs_dnode":       "dnodestats",
	"zfs_fm":          "fm",
	"zfs_vdev_cache":  "vdev_cache_stats",
	"zfs_vdev_mirror": "vdev_mirror_stats",
	"zfs_xuio":        "xuio_stats",
	"zfs_zfetch":      "zfetchstats",
	"zfs_zil":         "zil",
}

// zfsPoolStates are the states node_zfs_zpool_state reports, one series
// each.
var zfsPoolStates = [...]string{"online", "degraded", "faulted", "offline", "removed", "unavail", "suspended"}

// The SPL's kstat data types reported (KSTAT_DATA_INT64, _UINT64).
const (
	kstatInt64  = "3"
	kstatUint64 = "4"
)

// errNoZFS: the node lacks what the collector reads; returned on every
// scrape, so built once.
var errNoZFS = fmt.Errorf("ZFS statistics are not available (/proc/spl/kstat/zfs): %w", nodeexp.ErrNoData)

func newZFSCollector(cfg *Config, logger *slog.Logger) (nodeexp.Collector, error) {
	return &zfsCollector{
		base:   filepath.Join(cfg.ProcPath, "spl/kstat/zfs"),
		logger: logger,
		state:  constmetric.NewDesc("node_zfs_zpool_state", "kstat.zfs.misc.state", []string{"zpool", "state"}, nil),
	}, nil
}

// kstatName turns a kstat's key into the end of its family's name.
func kstatName(key string) string {
	return strings.ReplaceAll(key[strings.LastIndexByte(key, '.')+1:], "-", "_")
}

func (c *zfsCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	if _, err := os.Stat(c.base); err != nil {
		return errNoZFS
	}
	for prefix, file := range zfsSubsystems {
		var parseErr error
		err := readFile(filepath.Join(c.base, file), func(b []byte) error {
			parseErr = parseKstat(b, func(name, typ, value string) error {
				key := "kstat.zfs.misc." + file + "." + name
				var v float64
				switch typ {
				case kstatUint64:
					u, err := strconv.ParseUint(value, 10, 64)
					if err != nil {
						return fmt.Errorf("could not parse expected unsigned integer value for %q: %w", key, err)
					}
					v = float64(u)
				case kstatInt64:
					i, err := strconv.ParseInt(value, 10, 64)
					if err != nil {
						return fmt.Errorf("could not parse expected signed integer value for %q: %w", key, err)
					}
					v = float64(i)
				default:
					return nil
				}
				send(ch, c.descs.get("node_"+prefix+"_"+kstatName(key), key), prometheus.UntypedValue, v)
				return nil
			})
			return nil
		})
		if err != nil {
			c.logger.Debug("cannot open ZFS kstat", "file", file, "err", err)
			continue
		}
		if parseErr != nil {
			return fmt.Errorf("%s: %w", file, parseErr)
		}
	}
	return c.updatePools(ch)
}

// parseKstat calls row for each row of a kstat's "name type data" table;
// a file without the table's header is an error.
func parseKstat(b []byte, row func(name, typ, value string) error) error {
	table := false
	for len(b) > 0 {
		var line []byte
		line, b = cutLine(b)
		p := strings.Fields(string(line))
		if !table {
			table = len(p) == 3 && p[0] == "name" && p[1] == "type" && p[2] == "data"
			continue
		}
		if len(p) < 3 {
			continue
		}
		if err := row(p[0], p[1], p[2]); err != nil {
			return err
		}
	}
	if !table {
		return errors.New("no kstat table")
	}
	return nil
}

// poolOf is the pool directory a pool kstat's path is in.
func poolOf(path string) string { return filepath.Base(filepath.Dir(path)) }

func (c *zfsCollector) updatePools(ch *nodeexp.Sink) error {
	ios, _ := filepath.Glob(filepath.Join(c.base, "*", "io"))
	for _, p := range ios {
		if err := c.poolIO(ch, p); err != nil {
			return err
		}
	}
	objsets, _ := filepath.Glob(filepath.Join(c.base, "*", "objset-*"))
	for _, p := range objsets {
		if err := c.poolObjset(ch, p); err != nil {
			return err
		}
	}
	states, _ := filepath.Glob(filepath.Join(c.base, "*", "state"))
	for _, p := range states {
		b, err := readString(p)
		if err != nil {
			return fmt.Errorf("ZFS statistics are not available: %w", err)
		}
		state, _, _ := strings.Cut(b, "\n")
		state = strings.ToLower(state)
		for _, name := range zfsPoolStates {
			v := 0.0
			if state == name {
				v = 1
			}
			send(ch, c.state, prometheus.GaugeValue, v, poolOf(p), name)
		}
	}
	return nil
}

// poolIO reports a pool's io kstat: a header line of field names, starting
// with nread, then a line of values.
func (c *zfsCollector) poolIO(ch *nodeexp.Sink, path string) error {
	var parseErr error
	err := readFile(path, func(b []byte) error { parseErr = c.parsePoolIO(ch, path, b); return nil })
	if err != nil {
		return fmt.Errorf("ZFS statistics are not available: %w", err)
	}
	return parseErr
}

func (c *zfsCollector) parsePoolIO(ch *nodeexp.Sink, path string, b []byte) error {
	var fields []string
	for len(b) > 0 {
		var l []byte
		l, b = cutLine(b)
		line := strings.Fields(string(l))
		if fields == nil {
			if len(line) >= 12 && line[0] == "nread" {
				fields = line
			}
			continue
		}
		for i, field := range fields {
			key := "kstat.zfs.misc.io." + field
			if i >= len(line) {
				return fmt.Errorf("could not parse expected integer value for %q: short line", key)
			}
			v, err := strconv.ParseUint(line[i], 10, 64)
			if err != nil {
				return fmt.Errorf("could not parse expected integer value for %q: %w", key, err)
			}
			send(ch, c.descs.get("node_zfs_zpool_"+kstatName(key), key, "zpool"), prometheus.UntypedValue, float64(v), poolOf(path))
		}
	}
	return nil
}

// poolObjset reports one dataset's objset kstat, named by its dataset_name
// row.
func (c *zfsCollector) poolObjset(ch *nodeexp.Sink, path string) error {
	var parseErr error
	err := readFile(path, func(b []byte) error { parseErr = c.parsePoolObjset(ch, path, b); return nil })
	if err != nil {
		return fmt.Errorf("ZFS statistics are not available: %w", err)
	}
	return parseErr
}

func (c *zfsCollector) parsePoolObjset(ch *nodeexp.Sink, path string, b []byte) error {
	table := false
	var pool, dataset string
	for len(b) > 0 {
		var l []byte
		l, b = cutLine(b)
		line := string(l)
		p := strings.Fields(line)
		if !table {
			table = len(p) == 3 && p[0] == "name" && p[1] == "type" && p[2] == "data"
			continue
		}
		if len(p) < 3 {
			continue
		}
		if p[0] == "dataset_name" {
			// The name runs to the end of the line and may hold spaces.
			pool, dataset = poolOf(path), line[strings.Index(line, p[2]):]
			continue
		}
		if p[1] != kstatUint64 {
			continue
		}
		key := "kstat.zfs.misc.objset." + p[0]
		v, err := strconv.ParseUint(p[2], 10, 64)
		if err != nil {
			return fmt.Errorf("could not parse expected integer value for %q", key)
		}
		send(ch, c.descs.get("node_zfs_zpool_dataset_"+kstatName(key), key, "zpool", "dataset"), prometheus.UntypedValue, float64(v), pool, dataset)
	}
	if !table {
		return fmt.Errorf("did not parse a single %s %s metric", pool, dataset)
	}
	return nil
}
