package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"
	"golang.org/x/sys/unix"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// netclassCollector reports interface properties from /sys/class/net. Only
// interfaces that are not ignored are read, since each costs 23 file reads.
//
// The attribute files of up to maxOpenIfaces interfaces stay open between
// scrapes and are re-read with pread(2) at offset 0, which makes sysfs
// produce the value afresh: open(2) and close(2) of sysfs files were three
// fifths of the collector's CPU. Each open file holds about 4.4 KiB of
// kernel memory (the file, its seq_file and that one's page), charged to
// nodeexp's cgroup, not its RSS: 100 KiB per interface, so the number kept
// open is bounded; further interfaces are read the plain way.
type netclassCollector struct {
	series  seriesCache // label pairs of the series, across scrapes
	fs      sysfs.FS
	sysPath string
	ignore  *regexp.Regexp
	// ignoreInvalidSpeed is --collector.netclass.ignore-invalid-speed.
	ignoreInvalidSpeed bool
	logger             *slog.Logger
	up                 *constmetric.Desc
	info               *constmetric.Desc
	props              [len(netclassProps)]*constmetric.Desc

	// sem lets one Update at a time own the open files (an overlapping
	// scrape reads the plain way).
	sem    chan struct{}
	open   map[string]*ifaceFiles
	values attrReader // 6 KiB: too much for the goroutine's first stack
}

// maxOpenIfaces bounds the interfaces whose files stay open (kernel
// memory: ~100 KiB each). Nodes have a handful that are not ignored.
const maxOpenIfaces = 16

// netclassAttrs are the sysfs attributes read per interface, in the order
// of the indexes below.
var netclassAttrs = [...]string{
	"addr_assign_type", "address", "broadcast", "carrier", "carrier_changes", "carrier_up_count",
	"carrier_down_count", "dev_id", "dormant", "duplex", "flags", "ifalias", "ifindex", "iflink",
	"link_mode", "mtu", "name_assign_type", "netdev_group", "operstate", "speed", "tx_queue_len", "type",
}

const (
	aAddrAssignType = iota
	aAddress
	aBroadcast
	aCarrier
	aCarrierChanges
	aCarrierUp
	aCarrierDown
	aDevID
	aDormant
	aDuplex
	aFlags
	aIfAlias
	aIfIndex
	aIfLink
	aLinkMode
	aMTU
	aNameAssignType
	aNetDevGroup
	aOperState
	aSpeed
	aTxQueueLen
	aType
	nAttrs
)

// netclassProps are the numeric properties exported as
// node_network_<name>, in node_exporter's order, with their attribute.
var netclassProps = [...]struct {
	name    string
	attr    int
	counter bool
}{
	{"address_assign_type", aAddrAssignType, false},
	{"carrier", aCarrier, false},
	{"carrier_changes_total", aCarrierChanges, true},
	{"carrier_up_changes_total", aCarrierUp, true},
	{"carrier_down_changes_total", aCarrierDown, true},
	{"device_id", aDevID, false},
	{"dormant", aDormant, false},
	{"flags", aFlags, false},
	{"iface_id", aIfIndex, false},
	{"iface_link", aIfLink, false},
	{"iface_link_mode", aLinkMode, false},
	{"mtu_bytes", aMTU, false},
	{"name_assign_type", aNameAssignType, false},
	{"net_dev_group", aNetDevGroup, false},
	{"speed_bytes", aSpeed, false},
	{"transmit_queue_length", aTxQueueLen, false},
	{"protocol_type", aType, false},
}

// ifaceFiles are an interface's open attribute files; -1 where the
// attribute does not exist.
type ifaceFiles struct {
	fds  [nAttrs]int
	seen bool // listed in the current scrape
}

func newNetclassCollector(cfg *Config, logger *slog.Logger) (nodeexp.Collector, error) {
	fs, err := sysfs.NewFS(cfg.SysPath)
	if err != nil {
		return nil, fmt.Errorf("opening sysfs %q: %w", cfg.SysPath, err)
	}
	re, err := regexp.Compile(cfg.NetclassIgnoredDevices)
	if err != nil {
		return nil, fmt.Errorf("compiling netclass ignored-devices: %w", err)
	}
	c := &netclassCollector{
		fs:                 fs,
		sysPath:            cfg.SysPath,
		ignore:             re,
		ignoreInvalidSpeed: cfg.NetclassIgnoreInvalidSpeed,
		logger:             logger,
		up:                 constmetric.NewDesc("node_network_up", "Value is 1 if operstate is 'up', 0 otherwise.", []string{"device"}, nil),
		info: constmetric.NewDesc("node_network_info", "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
			[]string{"device", "address", "broadcast", "duplex", "operstate", "adminstate", "ifalias"}, nil),
		sem:  make(chan struct{}, 1),
		open: make(map[string]*ifaceFiles),
	}
	for i, p := range netclassProps {
		c.props[i] = constmetric.NewDesc("node_network_"+p.name, "Network device property: "+p.name, []string{"device"}, nil)
	}
	return c, nil
}

func (c *netclassCollector) Update(ctx context.Context, ch *nodeexp.Sink) error {
	devs, err := c.fs.NetClassDevices()
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("could not read netclass: %w", errors.Join(nodeexp.ErrNoData, err))
	}
	if err != nil {
		return fmt.Errorf("could not get net class info: %w", err)
	}
	owner := false
	var r *attrReader
	select {
	case c.sem <- struct{}{}:
		owner = true
		r = &c.values
		defer func() { <-c.sem }()
	default:
		r = new(attrReader)
	}
	for _, dev := range devs {
		if c.ignore.MatchString(dev) {
			continue
		}
		if err := c.readIface(dev, owner, r); err != nil {
			// The interface can vanish between listing and reading
			// (pods come and go); that is not a failed scrape.
			c.logger.Debug("could not read interface", "device", dev, "err", err)
			continue
		}
		operState := r.str(aOperState)
		up := 0.0
		if operState == "up" {
			up = 1
		}
		flags, hasFlags := r.num(aFlags)
		c.series.send(ch, c.up, prometheus.GaugeValue, up, dev)
		c.series.send(ch, c.info, prometheus.GaugeValue, 1, dev, r.str(aAddress), r.str(aBroadcast), r.str(aDuplex), operState,
			adminState(flags, hasFlags), r.str(aIfAlias))
		for i, p := range netclassProps {
			v, ok := r.num(p.attr)
			if !ok {
				continue
			}
			if p.attr == aSpeed && v < 0 && c.ignoreInvalidSpeed {
				continue // -1: the link is down or the driver does not say
			}
			if p.attr == aSpeed {
				// sysfs reports Mbit/s; node_exporter exports bytes/s,
				// and (by default) also the -1 "unknown" speed as -125000.
				v = v * 1000 * 1000 / 8
			}
			t := prometheus.GaugeValue
			if p.counter {
				t = prometheus.CounterValue
			}
			c.series.send(ch, c.props[i], t, float64(v), dev)
		}
	}
	if owner {
		// Interfaces not listed this time are gone: close their files.
		for name, f := range c.open {
			if !f.seen {
				f.close()
				delete(c.open, name)
			}
			f.seen = false
		}
	}
	return ctx.Err()
}

// attrReader holds the raw values of one interface's attributes.
type attrReader struct {
	buf [nAttrs][256]byte
	n   [nAttrs]int // -1: not readable
}

func (r *attrReader) raw(a int) []byte {
	if r.n[a] < 0 {
		return nil
	}
	return bytes.TrimSpace(r.buf[a][:r.n[a]])
}

func (r *attrReader) str(a int) string {
	b := r.raw(a)
	if b == nil {
		return ""
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

func (r *attrReader) num(a int) (int64, bool) {
	b := r.raw(a)
	if len(b) == 0 {
		return 0, false
	}
	v, err := strconv.ParseInt(string(b), 0, 64) // flags is hexadecimal ("0x1003"); no allocation
	return v, err == nil
}

// readIface reads the attributes node_exporter reports, and only those,
// into r: through the interface's kept-open files when owner (the files
// are opened on first use, up to maxOpenIfaces interfaces), otherwise with
// openat(2) relative to the interface's directory (sysfs' NetClassByIface
// reads every attribute through os.Open).
func (c *netclassCollector) readIface(dev string, owner bool, r *attrReader) error {
	if owner {
		f := c.open[dev]
		if f == nil && len(c.open) < maxOpenIfaces {
			var err error
			if f, err = c.openIface(dev); err != nil {
				return err
			}
			c.open[dev] = f
		}
		if f != nil {
			f.seen = true
			if f.read(r) {
				return nil
			}
			// The interface went away, maybe to come back under the
			// same name: its files are reopened on the next scrape.
			f.close()
			delete(c.open, dev)
			return fmt.Errorf("interface %s: %w", dev, unix.ENODEV)
		}
	}
	f, err := c.openIface(dev)
	if err != nil {
		return err
	}
	defer f.close()
	if !f.read(r) {
		return fmt.Errorf("interface %s: %w", dev, unix.ENODEV)
	}
	return nil
}

func (c *netclassCollector) openIface(dev string) (*ifaceFiles, error) {
	dir := filepath.Join(c.sysPath, "class/net", dev)
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(dfd)
	f := &ifaceFiles{}
	for i, name := range netclassAttrs {
		fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			fd = -1
		}
		f.fds[i] = fd
	}
	return f, nil
}

// read fills r from the files. It reports false when the interface is
// gone (ENODEV: sysfs removed its attributes); other errors only make
// that attribute unreadable (the speed of a link that is down: EINVAL).
func (f *ifaceFiles) read(r *attrReader) bool {
	for i, fd := range f.fds {
		r.n[i] = -1
		if fd < 0 {
			continue
		}
		for {
			n, err := unix.Pread(fd, r.buf[i][:], 0)
			if err == unix.EINTR {
				continue
			}
			if err == unix.ENODEV {
				return false
			}
			if err == nil {
				r.n[i] = n
			}
			break
		}
	}
	return true
}

// Close closes the kept-open attribute files. Update may be called again
// afterwards; it reopens them.
func (c *netclassCollector) Close() error {
	c.sem <- struct{}{}
	defer func() { <-c.sem }()
	for name, f := range c.open {
		f.close()
		delete(c.open, name)
	}
	return nil
}

func (f *ifaceFiles) close() {
	for i, fd := range f.fds {
		if fd >= 0 {
			unix.Close(fd)
			f.fds[i] = -1
		}
	}
}

func adminState(flags int64, ok bool) string {
	switch {
	case !ok:
		return "unknown"
	case flags&int64(net.FlagUp) != 0:
		return "up"
	default:
		return "down"
	}
}
