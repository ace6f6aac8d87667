package collector

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// selinuxCollector reports whether SELinux is enabled and its modes, as
// node_exporter does through opencontainers/selinux, whose rules it
// follows: the exporter's own selinuxfs mount (not --path.sysfs), its own
// security context, /etc/selinux/config. That library (with its
// filepath-securejoin and go-pathrs dependencies) is not linked for the
// three reads this takes.
type selinuxCollector struct {
	enabled, config, current *constmetric.Desc

	once  sync.Once
	mount string // selinuxfs mount point; "" when SELinux is off
	// The paths read, fixed outside tests.
	sysMount, filesystems, mountinfo, attrCurrent, configFile string
}

func newSelinuxCollector(_ *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	return &selinuxCollector{
		enabled:     constmetric.NewDesc("node_selinux_enabled", "SELinux is enabled, 1 is true, 0 is false", nil, nil),
		config:      constmetric.NewDesc("node_selinux_config_mode", "Configured SELinux enforcement mode", nil, nil),
		current:     constmetric.NewDesc("node_selinux_current_mode", "Current SELinux enforcement mode", nil, nil),
		sysMount:    "/sys/fs/selinux",
		filesystems: "/proc/filesystems",
		mountinfo:   "/proc/self/mountinfo",
		attrCurrent: "/proc/thread-self/attr/current",
		configFile:  "/etc/selinux/config",
	}, nil
}

func (c *selinuxCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	// As the library does, whether SELinux is on is decided once.
	c.once.Do(func() { c.mount = c.findMount() })
	if c.mount == "" {
		send(ch, c.enabled, prometheus.GaugeValue, 0)
		return nil
	}
	send(ch, c.enabled, prometheus.GaugeValue, 1)
	send(ch, c.config, prometheus.GaugeValue, float64(c.configMode()))
	send(ch, c.current, prometheus.GaugeValue, float64(c.enforceMode()))
	return nil
}

// findMount returns the selinuxfs mount point, or "" when SELinux is off:
// no writable selinuxfs, or this process runs with the "kernel" context.
func (c *selinuxCollector) findMount() string {
	mnt := ""
	if selinuxfsMount(c.sysMount) {
		mnt = c.sysMount
	} else if fs, err := os.ReadFile(c.filesystems); err == nil && bytes.Contains(fs, []byte("\tselinuxfs\n")) {
		if f, err := os.Open(c.mountinfo); err == nil {
			s := bufio.NewScanner(f)
			for s.Scan() && mnt == "" {
				if !bytes.Contains(s.Bytes(), []byte(" - selinuxfs ")) {
					continue
				}
				if fields := bytes.SplitN(s.Bytes(), []byte(" "), 6); len(fields) == 6 && selinuxfsMount(string(fields[4])) {
					mnt = string(fields[4])
				}
			}
			f.Close()
		}
	}
	if mnt == "" {
		return ""
	}
	if con, err := os.ReadFile(c.attrCurrent); err == nil && string(bytes.TrimRight(con, "\x00\n ")) == "kernel" {
		return ""
	}
	return mnt
}

// selinuxfsMount reports whether mnt is a writable selinuxfs.
func selinuxfsMount(mnt string) bool {
	var st unix.Statfs_t
	err := unix.Statfs(mnt, &st)
	for err == unix.EINTR || err == unix.EAGAIN {
		err = unix.Statfs(mnt, &st)
	}
	return err == nil && uint32(st.Type) == uint32(unix.SELINUX_MAGIC) && st.Flags&unix.ST_RDONLY == 0
}

// enforceMode is the current mode: 1 enforcing, 0 permissive, -1 unknown.
func (c *selinuxCollector) enforceMode() int {
	b, err := os.ReadFile(filepath.Join(c.mount, "enforce"))
	if err != nil {
		return -1
	}
	v, err := strconv.Atoi(string(b))
	if err != nil {
		return -1
	}
	return v
}

// configMode is the mode /etc/selinux/config boots with: 1 enforcing,
// 0 permissive, -1 disabled.
func (c *selinuxCollector) configMode() int {
	f, err := os.Open(c.configFile)
	if err != nil {
		return -1
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := bytes.TrimSpace(s.Bytes())
		if len(line) == 0 || line[0] == ';' || line[0] == '#' {
			continue
		}
		if k, v, ok := bytes.Cut(line, []byte("=")); ok && string(k) == "SELINUX" {
			switch string(bytes.Trim(v, `"`)) {
			case "enforcing":
				return 1
			case "permissive":
				return 0
			}
			return -1
		}
	}
	return -1
}
