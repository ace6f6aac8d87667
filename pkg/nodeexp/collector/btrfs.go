package collector

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
	"github.com/prometheus/procfs/btrfs"
	"golang.org/x/sys/unix"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// btrfsCollector reports Btrfs file systems from /sys/fs/btrfs, and each
// mounted one's devices and error counters through the kernel's btrfs
// ioctls, as node_exporter does. The three ioctls are issued here rather
// than through dennwc/btrfs (node_exporter's choice), whose send/receive
// and subvolume code nodeexp has no use for.
type btrfsCollector struct {
	fs       btrfs.FS
	procfs   procfs.FS
	rootPath string
	sysPath  string
	logger   *slog.Logger
	// devStats returns the devices of the mounted Btrfs file systems by
	// file system id (32 hex digits); tests replace it.
	devStats func() (map[string][]btrfsDevice, error)

	info, rsv, commits, lastCommit, maxCommit, commitTotal *constmetric.Desc
	reserved, used, size, ratio                            *constmetric.Desc
	devSize, devSizeIoctl, devUnused, devErrors            *constmetric.Desc
}

// btrfsDevice is one device of a mounted Btrfs file system.
type btrfsDevice struct {
	path, uuid            string
	bytesUsed, totalBytes uint64
	// errors: write, read, flush, corruption, generation.
	errors [5]uint64
}

var btrfsErrorTypes = [5]string{"write", "read", "flush", "corruption", "generation"}

func newBtrfsCollector(cfg *Config, logger *slog.Logger) (nodeexp.Collector, error) {
	fs, err := btrfs.NewFS(cfg.SysPath)
	if err != nil {
		return nil, fmt.Errorf("opening sysfs %q: %w", cfg.SysPath, err)
	}
	pfs, err := procfs.NewFS(cfg.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("opening procfs %q: %w", cfg.ProcPath, err)
	}
	d := func(name, help string, labels ...string) *constmetric.Desc {
		return constmetric.NewDesc("node_btrfs_"+name, help, append([]string{"uuid"}, labels...), nil)
	}
	c := &btrfsCollector{
		fs:           fs,
		procfs:       pfs,
		rootPath:     cfg.RootPath,
		sysPath:      cfg.SysPath,
		logger:       logger,
		info:         d("info", "Filesystem information", "label"),
		rsv:          d("global_rsv_size_bytes", "Size of global reserve."),
		commits:      d("commits_total", "The total number of commits that have occurred."),
		lastCommit:   d("last_commit_seconds", "Duration of the most recent commit, in seconds."),
		maxCommit:    d("max_commit_seconds", "Duration of the slowest commit, in seconds."),
		commitTotal:  d("commit_seconds_total", "Sum of the duration of all commits, in seconds."),
		reserved:     d("reserved_bytes", "Amount of space reserved for a data type", "block_group_type"),
		used:         d("used_bytes", "Amount of used space by a layout/data type", "block_group_type", "mode"),
		size:         d("size_bytes", "Amount of space allocated for a layout/data type", "block_group_type", "mode"),
		ratio:        d("allocation_ratio", "Data allocation ratio for a layout/data type", "block_group_type", "mode"),
		devSize:      d("device_size_bytes", "Size of a device that is part of the filesystem.", "device"),
		devSizeIoctl: d("device_size_bytes", "Size of a device that is part of the filesystem.", "device", "btrfs_dev_uuid"),
		devUnused:    d("device_unused_bytes", "Unused bytes unused on a device that is part of the filesystem.", "device", "btrfs_dev_uuid"),
		devErrors:    d("device_errors_total", "Errors reported for the device", "type", "device", "btrfs_dev_uuid"),
	}
	c.devStats = c.ioctlStats
	return c, nil
}

func (c *btrfsCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	// With the module loaded, /sys/fs/btrfs holds "features" and one
	// directory per file system, named by its UUID.
	if any, err := anyEntry(filepath.Join(c.sysPath, "fs/btrfs"), except("features")); err == nil && !any {
		return nil
	}
	stats, err := c.fs.Stats()
	if err != nil {
		return fmt.Errorf("failed to retrieve Btrfs stats from procfs: %w", err)
	}
	if len(stats) == 0 {
		return nil // no Btrfs: the mount table need not be read
	}
	devices, err := c.devStats()
	if err != nil {
		c.logger.Debug("error querying btrfs device stats with ioctl", "err", err)
		devices = nil
	}
	for _, s := range stats {
		u := s.UUID
		send(ch, c.info, prometheus.GaugeValue, 1, u, s.Label)
		send(ch, c.rsv, prometheus.GaugeValue, float64(s.Allocation.GlobalRsvSize), u)
		send(ch, c.commits, prometheus.CounterValue, float64(s.CommitStats.Commits), u)
		send(ch, c.lastCommit, prometheus.GaugeValue, float64(s.CommitStats.LastCommitMs)/1000, u)
		send(ch, c.maxCommit, prometheus.GaugeValue, float64(s.CommitStats.MaxCommitMs)/1000, u)
		send(ch, c.commitTotal, prometheus.CounterValue, float64(s.CommitStats.TotalCommitMs)/1000, u)
		for _, a := range []struct {
			typ   string
			stats *btrfs.AllocationStats
		}{{"data", s.Allocation.Data}, {"metadata", s.Allocation.Metadata}, {"system", s.Allocation.System}} {
			if a.stats == nil {
				continue
			}
			send(ch, c.reserved, prometheus.GaugeValue, float64(a.stats.ReservedBytes), u, a.typ)
			for mode, l := range a.stats.Layouts {
				send(ch, c.used, prometheus.GaugeValue, float64(l.UsedBytes), u, a.typ, mode)
				send(ch, c.size, prometheus.GaugeValue, float64(l.TotalBytes), u, a.typ, mode)
				send(ch, c.ratio, prometheus.GaugeValue, l.Ratio, u, a.typ, mode)
			}
		}
		devs, mounted := devices[strings.ReplaceAll(u, "-", "")]
		if !mounted {
			// Not mounted where nodeexp can see it: sizes from sysfs.
			for name, d := range s.Devices {
				send(ch, c.devSize, prometheus.GaugeValue, float64(d.Size), u, name)
			}
			continue
		}
		for _, d := range devs {
			_, name := path.Split(d.path)
			send(ch, c.devSizeIoctl, prometheus.GaugeValue, float64(d.totalBytes), u, name, d.uuid)
			send(ch, c.devUnused, prometheus.GaugeValue, float64(d.totalBytes-d.bytesUsed), u, name, d.uuid)
			for i, t := range btrfsErrorTypes {
				send(ch, c.devErrors, prometheus.CounterValue, float64(d.errors[i]), u, t, name, d.uuid)
			}
		}
	}
	return nil
}

// ioctlStats asks each mounted Btrfs file system (from the mount table of
// PID 1, under --path.rootfs) for its devices and their error counters.
func (c *btrfsCollector) ioctlStats() (map[string][]btrfsDevice, error) {
	mounts, err := c.procfs.GetProcMounts(1)
	if os.IsNotExist(err) {
		mounts, err = c.procfs.GetMounts() // /proc/1 hidden (hidepid)
	}
	if err != nil {
		return nil, err
	}
	out := map[string][]btrfsDevice{}
	done := map[string]bool{}
	for _, m := range mounts {
		if m.FSType != "btrfs" || done[m.Source] {
			continue
		}
		mp := strings.ReplaceAll(strings.ReplaceAll(m.MountPoint, "\\040", " "), "\\011", "\t")
		devs, fsid, err := btrfsMountDevices(filepath.Join(c.rootPath, mp))
		if err != nil {
			c.logger.Debug("error querying btrfs mount point", "mountPoint", mp, "err", err)
			continue
		}
		if _, seen := out[fsid]; seen {
			continue
		}
		done[m.Source] = true
		out[fsid] = devs
	}
	return out, nil
}

// The kernel's btrfs ioctl arguments (include/uapi/linux/btrfs.h).
type btrfsFSInfoArgs struct {
	maxID, numDevices uint64
	fsid              [16]byte
	_                 [1024 - 32]byte
}

type btrfsDevInfoArgs struct {
	devid                 uint64
	uuid                  [16]byte
	bytesUsed, totalBytes uint64
	_                     [379]uint64
	path                  [1024]byte
}

type btrfsDevStatsArgs struct {
	devid, nrItems, flags uint64
	values                [5]uint64
	_                     [128 - 2 - 5]uint64
}

const btrfsIoctlMagic = 0x94

// ioc encodes an ioctl request number as Linux's _IOC does.
func ioc(dir, nr, size uintptr) uintptr { return dir<<30 | size<<16 | btrfsIoctlMagic<<8 | nr }

var (
	btrfsIocFSInfo   = ioc(2, 31, unsafe.Sizeof(btrfsFSInfoArgs{}))   // _IOR
	btrfsIocDevInfo  = ioc(3, 30, unsafe.Sizeof(btrfsDevInfoArgs{}))  // _IOWR
	btrfsIocDevStats = ioc(3, 52, unsafe.Sizeof(btrfsDevStatsArgs{})) // _IOWR
)

const btrfsSuperMagic = 0x9123683e

func btrfsIoctl(fd int, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return errno
	}
}

// btrfsMountDevices returns the devices of the Btrfs file system whose
// subvolume is mounted at dir, and the file system's id.
func btrfsMountDevices(dir string) ([]btrfsDevice, string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return nil, "", err
	}
	var sb unix.Stat_t
	if err := unix.Stat(dir, &sb); err != nil {
		return nil, "", err
	}
	// A subvolume's root is inode 256.
	if uint32(st.Type) != btrfsSuperMagic || sb.Ino != 256 {
		return nil, "", fmt.Errorf("%s is not a btrfs subvolume", dir)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOATIME, 0)
	if err != nil {
		fd, err = unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, "", err
	}
	defer unix.Close(fd)
	var info btrfsFSInfoArgs
	if err := btrfsIoctl(fd, btrfsIocFSInfo, unsafe.Pointer(&info)); err != nil {
		return nil, "", fmt.Errorf("BTRFS_IOC_FS_INFO: %w", err)
	}
	var devs []btrfsDevice
	for id := uint64(0); id <= info.maxID; id++ {
		dev := new(btrfsDevInfoArgs)
		dev.devid = id
		if err := btrfsIoctl(fd, btrfsIocDevInfo, unsafe.Pointer(dev)); err == unix.ENODEV {
			continue // a removed device's id
		} else if err != nil {
			return nil, "", fmt.Errorf("BTRFS_IOC_DEV_INFO: %w", err)
		}
		stats := btrfsDevStatsArgs{devid: id, nrItems: 5}
		if err := btrfsIoctl(fd, btrfsIocDevStats, unsafe.Pointer(&stats)); err != nil {
			return nil, "", fmt.Errorf("BTRFS_IOC_GET_DEV_STATS: %w", err)
		}
		p := dev.path[:]
		if i := slices.Index(p, 0); i >= 0 {
			p = p[:i]
		}
		devs = append(devs, btrfsDevice{path: string(p), uuid: btrfsUUID(dev.uuid), bytesUsed: dev.bytesUsed, totalBytes: dev.totalBytes, errors: stats.values})
		if uint64(len(devs)) == info.numDevices {
			break
		}
	}
	return devs, hex.EncodeToString(info.fsid[:]), nil
}

// btrfsUUID formats a device UUID as node_exporter's library does.
func btrfsUUID(u [16]byte) string {
	if u == [16]byte{} {
		return "<zero>"
	}
	h := hex.EncodeToString(u[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
