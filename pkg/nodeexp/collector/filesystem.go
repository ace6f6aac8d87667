package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// StatfsFunc is the statfs(2) call; tests replace it to fake hung mounts.
type StatfsFunc func(path string, buf *unix.Statfs_t) error

// filesystemCollector reports space and inodes of every mount, one statfs
// goroutine per mount. A statfs that does not return within MountTimeout
// (NFS server gone, FUSE daemon hung) marks the mount point stuck: it is
// reported with node_filesystem_device_error 1 and not stat'ed again until
// the pending call returns, so a hung mount costs one goroutine, not one per
// scrape, and never delays the scrape.
type filesystemCollector struct {
	series      seriesCache // label pairs of the series, across scrapes
	procPath    string
	rootPath    string
	mountPoints deviceFilter
	fsTypes     deviceFilter
	timeout     time.Duration
	statfs      StatfsFunc
	logger      *slog.Logger

	size, free, avail, files, filesFree, purgeable, ro, devErr, mountInfo *constmetric.Desc

	mu    sync.Mutex
	stuck map[string]bool // mount points with a statfs still pending

	// mountsMu guards the mountinfo lines of the last scrape, parsed, and
	// the buffer they are read into. Mount tables rarely change, so only
	// lines not seen in the previous scrape are parsed and matched against
	// the exclude patterns: parsing the whole table through procfs (an
	// options map per mount) was a tenth of a scrape's CPU.
	mountsMu sync.Mutex
	mounts   map[string]*mountLine
	buf      []byte
	gen      uint64               // the readMounts that last saw a line
	seen     map[mountLabels]bool // scratch of readMounts
	// watch is a descriptor of the mountinfo file last read, which the
	// kernel marks POLLPRI when the mount table changes (proc(5)): while
	// it is quiet, last is still the table and the file is not read
	// again (the kernel formats it anew on every read, a tenth of a ms per
	// hundred mounts, and an EKS node has a few mounts per pod). -1 when
	// the file is not on procfs (tests) or watching failed.
	watch     int
	watchPath string
	last      []*mountLine
	lastRead  time.Time
	reads     int // mountinfo reads, for tests

	// statDone, when set (tests), is called after each statfs returned and
	// the stuck set was updated.
	statDone func(mountPoint string)
}

var filesystemLabels = []string{"device", "mountpoint", "fstype", "device_error"}

func newFilesystemCollector(cfg *Config, logger *slog.Logger) (nodeexp.Collector, error) {
	mp, err := newDeviceFilter(cfg.MountPointsInclude, cfg.MountPointsExclude)
	if err != nil {
		return nil, fmt.Errorf("compiling the mount-points filters: %w", err)
	}
	ft, err := newDeviceFilter(cfg.FSTypesInclude, cfg.FSTypesExclude)
	if err != nil {
		return nil, fmt.Errorf("compiling the fs-types filters: %w", err)
	}
	statfs := cfg.Statfs
	if statfs == nil {
		statfs = unix.Statfs
	}
	d := func(name, help string) *constmetric.Desc {
		return constmetric.NewDesc("node_filesystem_"+name, help, filesystemLabels, nil)
	}
	return &filesystemCollector{
		procPath:    cfg.ProcPath,
		rootPath:    cfg.RootPath,
		mountPoints: mp,
		fsTypes:     ft,
		timeout:     cfg.MountTimeout,
		statfs:      statfs,
		logger:      logger,
		size:        d("size_bytes", "Filesystem size in bytes."),
		free:        d("free_bytes", "Filesystem free space in bytes."),
		avail:       d("avail_bytes", "Filesystem space available to non-root users in bytes."),
		files:       d("files", "Filesystem total file nodes."),
		filesFree:   d("files_free", "Filesystem total free file nodes."),
		purgeable:   d("purgeable_bytes", "Filesystem space available including purgeable space (MacOS specific)."),
		ro:          d("readonly", "Filesystem read-only status."),
		devErr:      d("device_error", "Whether an error occurred while getting statistics for the given device."),
		mountInfo: constmetric.NewDesc("node_filesystem_mount_info", "Filesystem mount information.",
			[]string{"device", "major", "minor", "mountpoint"}, nil),
		stuck:  make(map[string]bool),
		mounts: make(map[string]*mountLine),
		seen:   make(map[mountLabels]bool),
		watch:  -1,
	}, nil
}

type mountLabels struct {
	device, mountPoint, fsType, deviceError, major, minor string
}

type statResult struct {
	buf unix.Statfs_t
	err error
}

type pendingStat struct {
	labels mountLabels
	ro     float64
	res    chan statResult // nil when the mount is already known stuck
	done   *bool           // set under mu when the statfs returned
}

// mountLine is one line of mountinfo, parsed: skip is set for lines that
// are malformed, excluded by the patterns, or duplicates of an earlier line.
type mountLine struct {
	gen    uint64
	labels mountLabels
	ro     float64
	skip   bool
}

func (c *filesystemCollector) Update(ctx context.Context, ch *nodeexp.Sink) error {
	mounts, err := c.readMounts()
	if err != nil {
		return fmt.Errorf("couldn't get mount points: %w", err)
	}
	var pending []pendingStat
	for _, m := range mounts {
		p := pendingStat{labels: m.labels, ro: m.ro}
		c.mu.Lock()
		stuck := c.stuck[m.labels.mountPoint]
		c.mu.Unlock()
		if !stuck {
			p.res, p.done = c.startStat(m.labels.mountPoint)
		}
		pending = append(pending, p)
	}
	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	timedOut := false
	for _, p := range pending {
		var r statResult
		switch {
		case p.res == nil:
			r.err = errStuck
		case timedOut:
			select {
			case r = <-p.res:
			default:
				r.err = c.markStuck(p)
			}
		default:
			select {
			case r = <-p.res:
			case <-timer.C:
				timedOut = true
				select {
				case r = <-p.res:
				default:
					r.err = c.markStuck(p)
				}
			case <-ctx.Done():
				return fmt.Errorf("statfs of %s: %w", p.labels.mountPoint, ctx.Err())
			}
		}
		c.emit(ch, p, r)
	}
	return nil
}

// errStuck is reported in the device_error label as node_exporter does.
var errStuck = errors.New("mountpoint timeout")

func (c *filesystemCollector) startStat(mountPoint string) (chan statResult, *bool) {
	res := make(chan statResult, 1) // never blocks the statfs goroutine
	done := new(bool)
	path := filepath.Join(c.rootPath, mountPoint)
	go func() {
		var r statResult
		r.err = c.statfs(path, &r.buf)
		c.mu.Lock()
		*done = true
		if c.stuck[mountPoint] {
			c.logger.Info("mount point recovered, monitoring resumes", "mountpoint", mountPoint)
			delete(c.stuck, mountPoint)
		}
		hook := c.statDone
		c.mu.Unlock()
		res <- r
		if hook != nil {
			hook(mountPoint)
		}
	}()
	return res, done
}

func (c *filesystemCollector) markStuck(p pendingStat) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !*p.done {
		c.logger.Warn("mount point timed out, it is being labeled as stuck and will not be monitored until statfs returns", "mountpoint", p.labels.mountPoint)
		c.stuck[p.labels.mountPoint] = true
	}
	return errStuck
}

func (c *filesystemCollector) emit(ch *nodeexp.Sink, p pendingStat, r statResult) {
	l := p.labels
	if r.err != nil {
		l.deviceError = r.err.Error()
		c.logger.Debug("error on statfs() system call", "mountpoint", l.mountPoint, "err", r.err)
	}
	lv := []string{l.device, l.mountPoint, l.fsType, l.deviceError}
	devErr := 0.0
	if r.err != nil {
		devErr = 1
	}
	c.series.send(ch, c.devErr, prometheus.GaugeValue, devErr, lv...)
	c.series.send(ch, c.ro, prometheus.GaugeValue, p.ro, lv...)
	if r.err != nil {
		return
	}
	bs := float64(r.buf.Bsize)
	c.series.send(ch, c.size, prometheus.GaugeValue, float64(r.buf.Blocks)*bs, lv...)
	c.series.send(ch, c.free, prometheus.GaugeValue, float64(r.buf.Bfree)*bs, lv...)
	c.series.send(ch, c.avail, prometheus.GaugeValue, float64(r.buf.Bavail)*bs, lv...)
	c.series.send(ch, c.files, prometheus.GaugeValue, float64(r.buf.Files), lv...)
	c.series.send(ch, c.filesFree, prometheus.GaugeValue, float64(r.buf.Ffree), lv...)
	c.series.send(ch, c.mountInfo, prometheus.GaugeValue, 1, l.device, l.major, l.minor, l.mountPoint)
	// node_exporter reports purgeable space (a macOS notion) as 0 on Linux;
	// kept so the family set matches.
	c.series.send(ch, c.purgeable, prometheus.GaugeValue, 0, lv...)
}

// readMounts returns the mounts to report, in mountinfo order, from PID 1's
// mount table (the host's, when nodeexp shares the host PID namespace) or,
// without access to it, from nodeexp's own.
func (c *filesystemCollector) readMounts() ([]*mountLine, error) {
	c.mountsMu.Lock()
	defer c.mountsMu.Unlock()
	if c.last != nil && c.unchanged() {
		return c.last, nil
	}
	path := filepath.Join(c.procPath, "1/mountinfo")
	c.startWatch(path) // before reading: a change in between is seen next time
	var err error
	c.buf, err = readFileInto(path, c.buf)
	if errors.Is(err, os.ErrNotExist) {
		path = filepath.Join(c.procPath, "self/mountinfo")
		c.startWatch(path)
		c.buf, err = readFileInto(path, c.buf)
	}
	if err != nil {
		c.stopWatch()
		c.last = nil
		return nil, err
	}
	c.reads++
	c.lastRead = time.Now()
	// The mount table barely changes between scrapes: lines seen before
	// are found without allocating (a node's hundreds of pod mounts made
	// the map rebuilt on every scrape the collector's largest cost), and
	// lines not seen this time are dropped afterwards.
	c.gen++
	clear(c.seen)
	var out []*mountLine
	for rest := c.buf; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		if len(line) == 0 {
			continue
		}
		m, ok := c.mounts[string(line)] // no allocation for the lookup
		if !ok {
			m = c.parseMount(string(line))
			c.mounts[string(line)] = m
		}
		m.gen = c.gen
		if m.skip || c.seen[m.labels] {
			continue
		}
		c.seen[m.labels] = true
		out = append(out, m)
	}
	for line, m := range c.mounts {
		if m.gen != c.gen {
			delete(c.mounts, line)
		}
	}
	if c.watch >= 0 {
		c.last = out
	}
	return out, nil
}

// mountsRecheck is how long the table read last is trusted without
// reading it again, whatever the watch says.
const mountsRecheck = time.Minute

// unchanged reports whether the watched mount table has not changed since
// it was read.
func (c *filesystemCollector) unchanged() bool {
	if c.watch < 0 || time.Since(c.lastRead) > mountsRecheck {
		return false
	}
	fds := []unix.PollFd{{Fd: int32(c.watch), Events: unix.POLLPRI}}
	n, err := unix.Poll(fds, 0)
	if err != nil {
		c.stopWatch()
		return false
	}
	return n == 0 || fds[0].Revents&(unix.POLLPRI|unix.POLLERR|unix.POLLNVAL) == 0
}

// startWatch opens path to watch it, unless it is watched already; a file
// that is not on procfs is not watched (read every scrape).
func (c *filesystemCollector) startWatch(path string) {
	if c.watch >= 0 && c.watchPath == path {
		return
	}
	c.stopWatch()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil || st.Type != unix.PROC_SUPER_MAGIC {
		unix.Close(fd)
		return
	}
	c.watch, c.watchPath = fd, path
}

func (c *filesystemCollector) stopWatch() {
	if c.watch >= 0 {
		unix.Close(c.watch)
	}
	c.watch, c.watchPath, c.last = -1, "", nil
}

// parseMount parses one mountinfo line (proc(5)): "id parent major:minor
// root mountpoint options [optional fields...] - fstype source superoptions".
func (c *filesystemCollector) parseMount(line string) *mountLine {
	f := strings.Fields(line)
	sep := slices.Index(f, "-")
	if len(f) < 10 || sep < 6 || len(f) < sep+4 {
		c.logger.Debug("skipping malformed mountinfo line", "line", line)
		return &mountLine{skip: true}
	}
	majStr, minStr, ok := strings.Cut(f[2], ":")
	maj, err1 := strconv.Atoi(majStr)
	mnr, err2 := strconv.Atoi(minStr)
	if !ok || err1 != nil || err2 != nil {
		c.logger.Debug("skipping mount", "mountpoint", f[4], "err", fmt.Errorf("malformed major:minor %q", f[2]))
		return &mountLine{skip: true}
	}
	l := mountLabels{
		device:     strings.ToValidUTF8(f[sep+2], "\uFFFD"),
		mountPoint: strings.ToValidUTF8(c.stripRoot(unescapeMountPoint(f[4])), "\uFFFD"),
		fsType:     strings.ToValidUTF8(f[sep+1], "\uFFFD"),
		major:      strconv.Itoa(maj),
		minor:      strconv.Itoa(mnr),
	}
	m := &mountLine{labels: l, skip: c.mountPoints.ignored(l.mountPoint) || c.fsTypes.ignored(l.fsType)}
	if hasOption(f[5], "ro") || hasOption(f[sep+3], "ro") || hasOption(f[sep+3], "emergency_ro") {
		m.ro = 1
	}
	return m
}

// unescapeMountPoint undoes the kernel's octal escapes of space and tab in
// a mount point, as node_exporter does (it leaves the rarer \134 and \012).
func unescapeMountPoint(mp string) string {
	if !strings.Contains(mp, `\0`) {
		return mp
	}
	return strings.ReplaceAll(strings.ReplaceAll(mp, `\040`, " "), `\011`, "\t")
}

// hasOption reports whether a comma-separated mount option list holds opt,
// alone or as "opt=value".
func hasOption(opts, opt string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if k, _, _ := strings.Cut(o, "="); k == opt {
			return true
		}
	}
	return false
}

// stripRoot turns a mount point seen from a container with the host's root
// at --path.rootfs back into the host's path.
func (c *filesystemCollector) stripRoot(mp string) string {
	root := filepath.Clean(c.rootPath)
	if root == "/" {
		return mp
	}
	if mp == root {
		return "/"
	}
	if rest, ok := strings.CutPrefix(mp, root+"/"); ok {
		return "/" + rest
	}
	return mp
}
