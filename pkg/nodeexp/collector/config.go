package collector

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/nodekit/nodekit/pkg/nodeexp"
)

// Defaults follow kube-prometheus's node-exporter DaemonSet arguments, so that
// a node's pod volumes and pod network interfaces do not turn into series.
// Calico's host-side veths (cali*) are excluded as well: nodekit's sandbox
// and most EKS clusters with Calico name them that way.
const (
	DefaultMountPointsExclude = `^/(dev|proc|sys|run/credentials/.+|run/k3s/containerd/.+|var/lib/docker/.+|var/lib/containers/storage/.+|var/lib/kubelet/pods/.+)($|/)`
	DefaultFSTypesExclude     = `^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$`
	DefaultNetDeviceExclude   = `^(veth.*|cali.*|[a-f0-9]{15})$`
	DefaultDiskDeviceExclude  = `^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$`
	DefaultNetstatFields      = `^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts|TCPOFOQueue|TCPRcvQDrop)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$`
	DefaultVmstatFields       = `^(oom_kill|pgpg|pswp|pg.*fault).*`
)

// Config holds every setting of the node collectors. Build it with
// DefaultConfig and RegisterFlags, or as a literal in tests.
type Config struct {
	ProcPath string
	SysPath  string
	RootPath string
	// UdevDataPath holds udev's device database (disk model, serial, WWN).
	UdevDataPath string

	// Collectors maps a collector name to whether it runs. Names missing
	// from the map use the default: on, unless DisableDefaults.
	Collectors map[string]bool
	// DisableDefaults turns off every collector not enabled explicitly
	// (node_exporter's --collector.disable-defaults).
	DisableDefaults bool

	MountPointsExclude string
	FSTypesExclude     string
	// MountTimeout is how long one statfs may take before its mount point
	// is reported with node_filesystem_device_error 1 and left alone until
	// the call returns.
	MountTimeout time.Duration
	// Statfs replaces the statfs system call (tests fake hung mounts with it).
	Statfs StatfsFunc

	NetdevDeviceExclude    string
	NetclassIgnoredDevices string
	DiskstatsDeviceExclude string
	NetstatFields          string
	VmstatFields           string
	TextfileDirectories    []string
}

// DefaultConfig returns node_exporter's defaults with kube-prometheus's
// exclusions.
func DefaultConfig() Config {
	return Config{
		ProcPath:               "/proc",
		SysPath:                "/sys",
		RootPath:               "/",
		UdevDataPath:           "/run/udev/data",
		Collectors:             map[string]bool{},
		MountPointsExclude:     DefaultMountPointsExclude,
		FSTypesExclude:         DefaultFSTypesExclude,
		MountTimeout:           5 * time.Second,
		NetdevDeviceExclude:    DefaultNetDeviceExclude,
		NetclassIgnoredDevices: DefaultNetDeviceExclude,
		DiskstatsDeviceExclude: DefaultDiskDeviceExclude,
		NetstatFields:          DefaultNetstatFields,
		VmstatFields:           DefaultVmstatFields,
	}
}

// RegisterFlags binds node_exporter's flag names to c. extraCollectors are
// collector names owned by the caller (e.g. "pods") that also get
// --collector.<name> / --no-collector.<name> flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet, extraCollectors ...string) {
	fs.StringVar(&c.ProcPath, "path.procfs", c.ProcPath, "procfs mountpoint.")
	fs.StringVar(&c.SysPath, "path.sysfs", c.SysPath, "sysfs mountpoint.")
	fs.StringVar(&c.RootPath, "path.rootfs", c.RootPath, "rootfs mountpoint.")
	fs.StringVar(&c.UdevDataPath, "path.udev.data", c.UdevDataPath, "udev data path.")
	fs.StringVar(&c.MountPointsExclude, "collector.filesystem.mount-points-exclude", c.MountPointsExclude, "Regexp of mount points to exclude for filesystem collector.")
	fs.StringVar(&c.FSTypesExclude, "collector.filesystem.fs-types-exclude", c.FSTypesExclude, "Regexp of filesystem types to exclude for filesystem collector.")
	fs.DurationVar(&c.MountTimeout, "collector.filesystem.mount-timeout", c.MountTimeout, "How long to wait for a mount to respond before marking it as stale.")
	fs.StringVar(&c.NetdevDeviceExclude, "collector.netdev.device-exclude", c.NetdevDeviceExclude, "Regexp of net devices to exclude (mutually exclusive to device-include).")
	fs.StringVar(&c.NetclassIgnoredDevices, "collector.netclass.ignored-devices", c.NetclassIgnoredDevices, "Regexp of net devices to ignore for netclass collector.")
	fs.StringVar(&c.DiskstatsDeviceExclude, "collector.diskstats.device-exclude", c.DiskstatsDeviceExclude, "Regexp of diskstats devices to exclude.")
	fs.StringVar(&c.NetstatFields, "collector.netstat.fields", c.NetstatFields, "Regexp of fields to return for netstat collector.")
	fs.StringVar(&c.VmstatFields, "collector.vmstat.fields", c.VmstatFields, "Regexp of fields to return for vmstat collector.")
	fs.Func("collector.textfile.directory", "Directory to read text files with metrics from, supports glob matching. (repeatable)", func(s string) error {
		c.TextfileDirectories = append(c.TextfileDirectories, s)
		return nil
	})
	fs.BoolVar(&c.DisableDefaults, "collector.disable-defaults", c.DisableDefaults, "Set all collectors to disabled by default; enable them with --collector.<name>.")
	if c.Collectors == nil {
		c.Collectors = map[string]bool{}
	}
	names := append(slices.Sorted(maps.Keys(factories())), extraCollectors...)
	for _, name := range names {
		set := func(v bool) func(string) error {
			return func(s string) error {
				b, err := strconv.ParseBool(s)
				if err != nil {
					return err
				}
				c.Collectors[name] = b == v
				return nil
			}
		}
		fs.BoolFunc("collector."+name, fmt.Sprintf("Enable the %s collector (default: enabled).", name), set(true))
		fs.BoolFunc("no-collector."+name, fmt.Sprintf("Disable the %s collector.", name), set(false))
	}
}

// Enabled reports whether the named collector runs under c.
func (c *Config) Enabled(name string) bool { return c.enabled(name) }

func (c *Config) enabled(name string) bool {
	if on, set := c.Collectors[name]; set {
		return on
	}
	return !c.DisableDefaults
}

// Validate checks every regular expression so a typo fails at start-up.
func (c *Config) Validate() error {
	var errs []error
	for flagName, re := range map[string]string{
		"collector.filesystem.mount-points-exclude": c.MountPointsExclude,
		"collector.filesystem.fs-types-exclude":     c.FSTypesExclude,
		"collector.netdev.device-exclude":           c.NetdevDeviceExclude,
		"collector.netclass.ignored-devices":        c.NetclassIgnoredDevices,
		"collector.diskstats.device-exclude":        c.DiskstatsDeviceExclude,
		"collector.netstat.fields":                  c.NetstatFields,
		"collector.vmstat.fields":                   c.VmstatFields,
	} {
		if _, err := regexp.Compile(re); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", flagName, err))
		}
	}
	if c.ProcPath == "" || c.SysPath == "" || c.RootPath == "" {
		errs = append(errs, errors.New("--path.procfs, --path.sysfs and --path.rootfs must not be empty"))
	}
	return errors.Join(errs...)
}

// New builds the collectors enabled in cfg, by name. It starts nothing.
func New(cfg Config, logger *slog.Logger) (map[string]nodeexp.Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cs := make(map[string]nodeexp.Collector)
	for name, f := range factories() {
		if !cfg.enabled(name) {
			continue
		}
		c, err := f(&cfg, logger.With("collector", name))
		if err != nil {
			return nil, fmt.Errorf("creating collector %q: %w", name, err)
		}
		cs[name] = c
	}
	return cs, nil
}

// Names returns the names of the built-in collectors, sorted.
func Names() []string { return slices.Sorted(maps.Keys(factories())) }

// factory builds one collector from the shared configuration.
type factory func(cfg *Config, logger *slog.Logger) (nodeexp.Collector, error)

// factories lists the built-in collectors. It is a function rather than a
// package-level map filled by init functions so that nothing is mutable at
// package level.
func factories() map[string]factory {
	return map[string]factory{
		"arp":        newARPCollector,
		"bonding":    newBondingCollector,
		"conntrack":  newConntrackCollector,
		"cpu":        newCPUCollector,
		"diskstats":  newDiskstatsCollector,
		"entropy":    newEntropyCollector,
		"filefd":     newFilefdCollector,
		"filesystem": newFilesystemCollector,
		"loadavg":    newLoadavgCollector,
		"mdadm":      newMdadmCollector,
		"meminfo":    newMeminfoCollector,
		"netclass":   newNetclassCollector,
		"netdev":     newNetdevCollector,
		"netstat":    newNetstatCollector,
		"os":         newOSCollector,
		"pressure":   newPressureCollector,
		"schedstat":  newSchedstatCollector,
		"sockstat":   newSockstatCollector,
		"softnet":    newSoftnetCollector,
		"stat":       newStatCollector,
		"textfile":   newTextfileCollector,
		"time":       newTimeCollector,
		"timex":      newTimexCollector,
		"udp_queues": newUDPQueuesCollector,
		"uname":      newUnameCollector,
		"vmstat":     newVmstatCollector,
	}
}
