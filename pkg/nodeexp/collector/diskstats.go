package collector

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/blockdevice"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// diskstatsCollector reports /proc/diskstats per whole disk, plus
// node_disk_info and node_disk_filesystem_info from sysfs and udev.
type diskstatsCollector struct {
	series   seriesCache // label pairs of the series, across scrapes
	sysPath  string
	path     string
	udevPath string
	devices  deviceFilter
	logger   *slog.Logger
	descs    [17]*constmetric.Desc
	types    [17]prometheus.ValueType
	info     *constmetric.Desc
	fsInfo   *constmetric.Desc
	dmInfo   *constmetric.Desc
	// ata are the ATA properties udev records, by udev key.
	ata [3]struct {
		key  string
		desc *constmetric.Desc
	}
}

var diskstatsNames = [17][2]string{
	{"reads_completed_total", "The total number of reads completed successfully."},
	{"reads_merged_total", "The total number of reads merged."},
	{"read_bytes_total", "The total number of bytes read successfully."},
	{"read_time_seconds_total", "The total number of seconds spent by all reads."},
	{"writes_completed_total", "The total number of writes completed successfully."},
	{"writes_merged_total", "The number of writes merged."},
	{"written_bytes_total", "The total number of bytes written successfully."},
	{"write_time_seconds_total", "This is the total number of seconds spent by all writes."},
	{"io_now", "The number of I/Os currently in progress."},
	{"io_time_seconds_total", "Total seconds spent doing I/Os."},
	{"io_time_weighted_seconds_total", "The weighted # of seconds spent doing I/Os."},
	{"discards_completed_total", "The total number of discards completed successfully."},
	{"discards_merged_total", "The total number of discards merged."},
	{"discarded_sectors_total", "The total number of sectors discarded successfully."},
	{"discard_time_seconds_total", "This is the total number of seconds spent by all discards."},
	{"flush_requests_total", "The total number of flush requests completed successfully"},
	{"flush_requests_time_seconds_total", "This is the total number of seconds spent by all flush requests."},
}

const (
	sectorSize     = 512   // /proc/diskstats counts 512-byte sectors whatever the device
	secondsPerTick = 0.001 // and milliseconds
)

func newDiskstatsCollector(cfg *Config, logger *slog.Logger) (nodeexp.Collector, error) {
	// Only to fail at start-up on paths that do not exist, as node_exporter.
	if _, err := blockdevice.NewFS(cfg.ProcPath, cfg.SysPath); err != nil {
		return nil, fmt.Errorf("opening block devices under %q and %q: %w", cfg.ProcPath, cfg.SysPath, err)
	}
	devices, err := newDeviceFilter(cfg.DiskstatsDeviceInclude, cfg.DiskstatsDeviceExclude)
	if err != nil {
		return nil, fmt.Errorf("compiling the diskstats device filters: %w", err)
	}
	c := &diskstatsCollector{
		sysPath:  cfg.SysPath,
		path:     filepath.Join(cfg.ProcPath, "diskstats"),
		udevPath: cfg.UdevDataPath,
		devices:  devices,
		logger:   logger,
		info: constmetric.NewDesc("node_disk_info", "Info of /sys/block/<block_device>.",
			[]string{"device", "major", "minor", "path", "wwn", "model", "serial", "revision", "rotational"}, nil),
		fsInfo: constmetric.NewDesc("node_disk_filesystem_info", "Info about disk filesystem.",
			[]string{"device", "type", "usage", "uuid", "version"}, nil),
		dmInfo: constmetric.NewDesc("node_disk_device_mapper_info", "Info about disk device mapper.",
			[]string{"device", "name", "uuid", "vg_name", "lv_name", "lv_layer"}, nil),
	}
	for i, a := range [3][3]string{
		{"ID_ATA_WRITE_CACHE", "ata_write_cache", "ATA disk has a write cache."},
		{"ID_ATA_WRITE_CACHE_ENABLED", "ata_write_cache_enabled", "ATA disk has its write cache enabled."},
		{"ID_ATA_ROTATION_RATE_RPM", "ata_rotation_rate_rpm", "ATA disk rotation rate in RPMs (0 for SSDs)."},
	} {
		c.ata[i].key, c.ata[i].desc = a[0], constmetric.NewDesc("node_disk_"+a[1], a[2], []string{"device"}, nil)
	}
	for i, n := range diskstatsNames {
		c.descs[i] = constmetric.NewDesc("node_disk_"+n[0], n[1], []string{"device"}, nil)
		c.types[i] = prometheus.CounterValue
	}
	c.types[8] = prometheus.GaugeValue // io_now
	return c, nil
}

func (c *diskstatsCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	err := readFile(c.path, func(b []byte) error { c.parse(ch, b); return nil })
	if err != nil {
		return fmt.Errorf("couldn't get diskstats: %w", err)
	}
	return nil
}

func (c *diskstatsCollector) parse(ch *nodeexp.Sink, b []byte) {
	// Parsed here rather than with blockdevice.ProcDiskstats, which runs
	// fmt.Sscanf over every line, loop devices included: excluded devices
	// are skipped before any number is parsed.
	for line := range bytes.Lines(b) {
		f := strings.Fields(string(line))
		if len(f) < 14 { // major, minor, name and at least 11 counters
			continue
		}
		dev := f[2]
		if c.devices.ignored(dev) {
			continue
		}
		var v [17]float64
		n := min(len(f)-3, len(v))
		bad := false
		for i := range n {
			u, err := strconv.ParseUint(f[3+i], 10, 64)
			if err != nil {
				bad = true
				break
			}
			v[i] = float64(u)
		}
		if bad {
			continue
		}
		udev := c.udevProps(f[0], f[1])
		serial := udev["SCSI_IDENT_SERIAL"]
		if serial == "" {
			serial = udev["ID_SERIAL_SHORT"]
		}
		if serial == "" {
			serial = udev["ID_SERIAL"]
		}
		rot := "0"
		if r, err := readUint(filepath.Join(c.sysPath, "block", dev, "queue", "rotational")); err == nil && r == 1 {
			rot = "1"
		}
		c.series.send(ch, c.info, prometheus.GaugeValue, 1, dev, f[0], f[1],
			udev["ID_PATH"], udev["ID_WWN"], udev["ID_MODEL"], serial, udev["ID_REVISION"], rot)
		// Sectors are 512 bytes whatever the device; times are in ms.
		for _, i := range []int{2, 6} {
			v[i] *= sectorSize
		}
		for _, i := range []int{3, 7, 9, 10, 14, 16} {
			v[i] *= secondsPerTick
		}
		// Older kernels print fewer columns: only report what exists.
		for i := range n {
			c.series.send(ch, c.descs[i], c.types[i], v[i], dev)
		}
		if t := udev["ID_FS_TYPE"]; t != "" {
			c.series.send(ch, c.fsInfo, prometheus.GaugeValue, 1, dev, t, udev["ID_FS_USAGE"], udev["ID_FS_UUID"], udev["ID_FS_VERSION"])
		}
		if name := udev["DM_NAME"]; name != "" {
			c.series.send(ch, c.dmInfo, prometheus.GaugeValue, 1, dev, name, udev["DM_UUID"], udev["DM_VG_NAME"], udev["DM_LV_NAME"], udev["DM_LV_LAYER"])
		}
		if udev["ID_ATA"] != "" {
			for _, a := range c.ata {
				s, ok := udev[a.key]
				if !ok {
					continue
				}
				if v, err := strconv.ParseFloat(s, 64); err == nil {
					c.series.send(ch, a.desc, prometheus.GaugeValue, v, dev)
				} else {
					c.logger.Debug("malformed ATA property in udev's database", "device", dev, "property", a.key, "err", err)
				}
			}
		}
	}
}

// udevProps reads the E: (environment) lines of udev's database entry for a
// block device; a missing database (containers, no udev) yields no labels.
func (c *diskstatsCollector) udevProps(major, minor string) map[string]string {
	var props map[string]string
	readFile(filepath.Join(c.udevPath, "b"+major+":"+minor), func(b []byte) error {
		props = map[string]string{}
		for len(b) > 0 {
			var line []byte
			line, b = cutLine(b)
			if kv, ok := bytes.CutPrefix(line, []byte("E:")); ok {
				if k, v, ok := bytes.Cut(kv, []byte("=")); ok {
					props[string(k)] = strings.ToValidUTF8(string(v), "\uFFFD")
				}
			}
		}
		return nil
	})
	return props
}
