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
// DefaultConfig and RegisterFlags, or as a literal in tests. Where
// node_exporter has an include and an exclude filter, setting the include
// drops an exclude left at its default, and setting both is an error, as
// in node_exporter.
type Config struct {
	ProcPath string
	SysPath  string
	RootPath string
	// UdevDataPath holds udev's device database (disk model, serial, WWN).
	UdevDataPath string

	// Collectors maps a collector name to whether it runs. Names missing
	// from the map use the default: on, unless DisableDefaults (and off
	// for the collectors node_exporter does not enable by default).
	Collectors map[string]bool
	// DisableDefaults turns off every collector not enabled explicitly
	// (node_exporter's --collector.disable-defaults).
	DisableDefaults bool

	ArpDeviceInclude, ArpDeviceExclude string
	// ArpNetlink, NetclassNetlink and NetdevNetlink are node_exporter's
	// netlink modes, which nodeexp does not have: it reads /proc/net/arp,
	// /sys/class/net and /proc/net/dev, the same counters, and refuses
	// true rather than ignore it.
	ArpNetlink, NetclassNetlink, NetdevNetlink bool

	BcachePriorityStats bool

	CPUGuest                                         bool
	CPUInfo                                          bool
	CPUInfoFlagsInclude, CPUInfoBugsInclude          string
	DiskstatsDeviceExclude, DiskstatsDeviceInclude   string
	EthtoolDeviceInclude, EthtoolDeviceExclude       string
	EthtoolMetricsInclude                            string
	MountPointsExclude, MountPointsInclude           string
	FSTypesExclude, FSTypesInclude                   string
	HwmonChipInclude, HwmonChipExclude               string
	HwmonSensorInclude, HwmonSensorExclude           string
	InfinibandDeviceInclude, InfinibandDeviceExclude string
	IPVSBackendLabels                                string
	// MountTimeout is how long one statfs may take before its mount point
	// is reported with node_filesystem_device_error 1 and left alone until
	// the call returns.
	MountTimeout time.Duration
	// Statfs replaces the statfs system call (tests fake hung mounts with it).
	Statfs StatfsFunc

	NetclassIgnoredDevices     string
	NetclassIgnoreInvalidSpeed bool
	NetdevDeviceExclude        string
	NetdevDeviceInclude        string
	NetdevAddressInfo          bool
	NetdevDetailedMetrics      bool
	NetdevLabelIfAlias         bool
	NetstatFields              string
	PowerSupplyIgnored         string
	RaplZoneLabel              bool
	StatSoftirq                bool
	TapestatsIgnoredDevices    string
	VmstatFields               string
	TextfileDirectories        []string
}

// defaultOff are the collectors node_exporter has but does not run unless
// asked: ethtool asks each interface's driver for its statistics, an
// ioctl per interface.
var defaultOff = map[string]bool{"ethtool": true}

// DefaultConfig returns node_exporter's defaults with kube-prometheus's
// exclusions.
func DefaultConfig() Config {
	return Config{
		ProcPath:                "/proc",
		SysPath:                 "/sys",
		RootPath:                "/",
		UdevDataPath:            "/run/udev/data",
		Collectors:              map[string]bool{},
		CPUGuest:                true,
		MountPointsExclude:      DefaultMountPointsExclude,
		FSTypesExclude:          DefaultFSTypesExclude,
		MountTimeout:            5 * time.Second,
		NetdevDeviceExclude:     DefaultNetDeviceExclude,
		NetclassIgnoredDevices:  DefaultNetDeviceExclude,
		DiskstatsDeviceExclude:  DefaultDiskDeviceExclude,
		EthtoolMetricsInclude:   ".*",
		IPVSBackendLabels:       "local_address,local_port,remote_address,remote_port,proto,local_mark",
		NetstatFields:           DefaultNetstatFields,
		PowerSupplyIgnored:      "^$",
		TapestatsIgnoredDevices: "^$",
		VmstatFields:            DefaultVmstatFields,
	}
}

// RegisterFlags binds node_exporter's flag names to c. extraCollectors are
// collector names owned by the caller (e.g. "pods") that also get
// --collector.<name> / --no-collector.<name> flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet, extraCollectors ...string) {
	str := func(p *string, name, usage string) { fs.StringVar(p, name, *p, usage) }
	str(&c.ProcPath, "path.procfs", "procfs mountpoint.")
	str(&c.SysPath, "path.sysfs", "sysfs mountpoint.")
	str(&c.RootPath, "path.rootfs", "rootfs mountpoint.")
	str(&c.UdevDataPath, "path.udev.data", "udev data path.")
	str(&c.ArpDeviceInclude, "collector.arp.device-include", "Regexp of arp devices to include (mutually exclusive to device-exclude).")
	str(&c.ArpDeviceExclude, "collector.arp.device-exclude", "Regexp of arp devices to exclude (mutually exclusive to device-include).")
	boolFlag(fs, &c.ArpNetlink, "collector.arp.netlink", "Use netlink to gather stats instead of /proc/net/arp. nodeexp reads /proc/net/arp only (default: false; true is refused).")
	boolFlag(fs, &c.NetclassNetlink, "collector.netclass.netlink", "Use netlink to gather stats instead of /sys/class/net. nodeexp reads /sys/class/net only (default: false; true is refused).")
	boolFlag(fs, &c.NetdevNetlink, "collector.netdev.netlink", "Use netlink to gather stats instead of /proc/net/dev. nodeexp reads /proc/net/dev, and rx_nohandler from sysfs, for the families of node_exporter's netlink mode (default: false, where node_exporter's is true; true is refused).")
	boolFlag(fs, &c.BcachePriorityStats, "collector.bcache.priorityStats", "Expose expensive priority stats.")
	boolFlag(fs, &c.CPUGuest, "collector.cpu.guest", "Enables metric node_cpu_guest_seconds_total.")
	boolFlag(fs, &c.CPUInfo, "collector.cpu.info", "Enables metric cpu_info.")
	str(&c.CPUInfoFlagsInclude, "collector.cpu.info.flags-include", "Filter the `flags` field in cpuInfo with a value that must be a regular expression.")
	str(&c.CPUInfoBugsInclude, "collector.cpu.info.bugs-include", "Filter the `bugs` field in cpuInfo with a value that must be a regular expression.")
	str(&c.DiskstatsDeviceExclude, "collector.diskstats.device-exclude", "Regexp of diskstats devices to exclude (mutually exclusive to device-include).")
	str(&c.DiskstatsDeviceInclude, "collector.diskstats.device-include", "Regexp of diskstats devices to include (mutually exclusive to device-exclude).")
	str(&c.EthtoolDeviceInclude, "collector.ethtool.device-include", "Regexp of ethtool devices to include (mutually exclusive to device-exclude).")
	str(&c.EthtoolDeviceExclude, "collector.ethtool.device-exclude", "Regexp of ethtool devices to exclude (mutually exclusive to device-include).")
	str(&c.EthtoolMetricsInclude, "collector.ethtool.metrics-include", "Regexp of ethtool stats to include.")
	str(&c.MountPointsExclude, "collector.filesystem.mount-points-exclude", "Regexp of mount points to exclude for filesystem collector (mutually exclusive to mount-points-include).")
	str(&c.MountPointsInclude, "collector.filesystem.mount-points-include", "Regexp of mount points to include for filesystem collector (mutually exclusive to mount-points-exclude).")
	str(&c.FSTypesExclude, "collector.filesystem.fs-types-exclude", "Regexp of filesystem types to exclude for filesystem collector (mutually exclusive to fs-types-include).")
	str(&c.FSTypesInclude, "collector.filesystem.fs-types-include", "Regexp of filesystem types to include for filesystem collector (mutually exclusive to fs-types-exclude).")
	fs.DurationVar(&c.MountTimeout, "collector.filesystem.mount-timeout", c.MountTimeout, "How long to wait for a mount to respond before marking it as stale.")
	str(&c.HwmonChipInclude, "collector.hwmon.chip-include", "Regexp of hwmon chip to include (mutually exclusive to device-exclude).")
	str(&c.HwmonChipExclude, "collector.hwmon.chip-exclude", "Regexp of hwmon chip to exclude (mutually exclusive to device-include).")
	str(&c.HwmonSensorInclude, "collector.hwmon.sensor-include", "Regexp of hwmon sensor to include (mutually exclusive to sensor-exclude).")
	str(&c.HwmonSensorExclude, "collector.hwmon.sensor-exclude", "Regexp of hwmon sensor to exclude (mutually exclusive to sensor-include).")
	str(&c.InfinibandDeviceInclude, "collector.infiniband.device-include", "Regexp of infiniband devices to include (mutually exclusive to device-exclude).")
	str(&c.InfinibandDeviceExclude, "collector.infiniband.device-exclude", "Regexp of infiniband devices to exclude (mutually exclusive to device-include).")
	str(&c.IPVSBackendLabels, "collector.ipvs.backend-labels", "Comma separated list for IPVS backend stats labels.")
	str(&c.NetclassIgnoredDevices, "collector.netclass.ignored-devices", "Regexp of net devices to ignore for netclass collector.")
	boolFlag(fs, &c.NetclassIgnoreInvalidSpeed, "collector.netclass.ignore-invalid-speed", "Ignore devices where the speed is invalid. This will be the default behavior in 2.x.")
	str(&c.NetdevDeviceInclude, "collector.netdev.device-include", "Regexp of net devices to include (mutually exclusive to device-exclude).")
	str(&c.NetdevDeviceExclude, "collector.netdev.device-exclude", "Regexp of net devices to exclude (mutually exclusive to device-include).")
	boolFlag(fs, &c.NetdevAddressInfo, "collector.netdev.address-info", "Collect address-info for every device.")
	boolFlag(fs, &c.NetdevDetailedMetrics, "collector.netdev.enable-detailed-metrics", "Use (incompatible) metric names that provide more detailed stats on Linux.")
	boolFlag(fs, &c.NetdevLabelIfAlias, "collector.netdev.label-ifalias", "Add ifAlias label.")
	str(&c.NetstatFields, "collector.netstat.fields", "Regexp of fields to return for netstat collector.")
	str(&c.PowerSupplyIgnored, "collector.powersupply.ignored-supplies", "Regexp of power supplies to ignore for powersupplyclass collector.")
	boolFlag(fs, &c.RaplZoneLabel, "collector.rapl.enable-zone-label", "Report RAPL zones as one family, node_rapl_joules_total, with a rapl_zone label.")
	boolFlag(fs, &c.StatSoftirq, "collector.stat.softirq", "Export softirq calls per vector.")
	str(&c.TapestatsIgnoredDevices, "collector.tapestats.ignored-devices", "Regexp of devices to ignore for tapestats.")
	str(&c.VmstatFields, "collector.vmstat.fields", "Regexp of fields to return for vmstat collector.")
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
		state := "enabled"
		if defaultOff[name] {
			state = "disabled"
		}
		fs.BoolFunc("collector."+name, fmt.Sprintf("Enable the %s collector (default: %s).", name, state), set(true))
		fs.BoolFunc("no-collector."+name, fmt.Sprintf("Disable the %s collector.", name), set(false))
	}
}

// boolFlag binds --name and, as kingpin does for node_exporter, --no-name.
func boolFlag(fs *flag.FlagSet, p *bool, name, usage string) {
	fs.BoolVar(p, name, *p, usage)
	fs.BoolFunc("no-"+name, "Unset --"+name+".", func(s string) error {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		*p = !b
		return nil
	})
}

// Enabled reports whether the named collector runs under c.
func (c *Config) Enabled(name string) bool { return c.enabled(name) }

func (c *Config) enabled(name string) bool {
	if on, set := c.Collectors[name]; set {
		return on
	}
	return !c.DisableDefaults && !defaultOff[name]
}

// filterPairs are the include/exclude pairs, with the flag names, whose
// exclude has a default that an include replaces.
func (c *Config) filterPairs() []struct {
	name             string
	include, exclude *string
	excludeDefault   string
} {
	return []struct {
		name             string
		include, exclude *string
		excludeDefault   string
	}{
		{"collector.arp.device", &c.ArpDeviceInclude, &c.ArpDeviceExclude, ""},
		{"collector.diskstats.device", &c.DiskstatsDeviceInclude, &c.DiskstatsDeviceExclude, DefaultDiskDeviceExclude},
		{"collector.ethtool.device", &c.EthtoolDeviceInclude, &c.EthtoolDeviceExclude, ""},
		{"collector.filesystem.mount-points", &c.MountPointsInclude, &c.MountPointsExclude, DefaultMountPointsExclude},
		{"collector.filesystem.fs-types", &c.FSTypesInclude, &c.FSTypesExclude, DefaultFSTypesExclude},
		{"collector.hwmon.chip", &c.HwmonChipInclude, &c.HwmonChipExclude, ""},
		{"collector.hwmon.sensor", &c.HwmonSensorInclude, &c.HwmonSensorExclude, ""},
		{"collector.infiniband.device", &c.InfinibandDeviceInclude, &c.InfinibandDeviceExclude, ""},
		{"collector.netdev.device", &c.NetdevDeviceInclude, &c.NetdevDeviceExclude, DefaultNetDeviceExclude},
	}
}

// Validate checks every regular expression so a typo fails at start-up,
// and the include/exclude pairs. An include drops an exclude left at its
// default (c is changed).
func (c *Config) Validate() error {
	var errs []error
	for name, on := range map[string]bool{"arp": c.ArpNetlink, "netclass": c.NetclassNetlink, "netdev": c.NetdevNetlink} {
		if on {
			errs = append(errs, fmt.Errorf("--collector.%s.netlink: nodeexp has no netlink mode; it reads the same counters from procfs and sysfs (use --no-collector.%s.netlink)", name, name))
		}
	}
	for _, p := range c.filterPairs() {
		if *p.include != "" && *p.exclude == p.excludeDefault {
			*p.exclude = ""
		}
		if *p.include != "" && *p.exclude != "" {
			errs = append(errs, fmt.Errorf("--%s-include and --%s-exclude are mutually exclusive", p.name, p.name))
		}
	}
	for flagName, re := range map[string]string{
		"collector.arp.device-include":              c.ArpDeviceInclude,
		"collector.arp.device-exclude":              c.ArpDeviceExclude,
		"collector.cpu.info.flags-include":          c.CPUInfoFlagsInclude,
		"collector.cpu.info.bugs-include":           c.CPUInfoBugsInclude,
		"collector.diskstats.device-exclude":        c.DiskstatsDeviceExclude,
		"collector.diskstats.device-include":        c.DiskstatsDeviceInclude,
		"collector.ethtool.device-include":          c.EthtoolDeviceInclude,
		"collector.ethtool.device-exclude":          c.EthtoolDeviceExclude,
		"collector.ethtool.metrics-include":         c.EthtoolMetricsInclude,
		"collector.filesystem.mount-points-exclude": c.MountPointsExclude,
		"collector.filesystem.mount-points-include": c.MountPointsInclude,
		"collector.filesystem.fs-types-exclude":     c.FSTypesExclude,
		"collector.filesystem.fs-types-include":     c.FSTypesInclude,
		"collector.hwmon.chip-include":              c.HwmonChipInclude,
		"collector.hwmon.chip-exclude":              c.HwmonChipExclude,
		"collector.hwmon.sensor-include":            c.HwmonSensorInclude,
		"collector.hwmon.sensor-exclude":            c.HwmonSensorExclude,
		"collector.infiniband.device-include":       c.InfinibandDeviceInclude,
		"collector.infiniband.device-exclude":       c.InfinibandDeviceExclude,
		"collector.netclass.ignored-devices":        c.NetclassIgnoredDevices,
		"collector.netdev.device-exclude":           c.NetdevDeviceExclude,
		"collector.netdev.device-include":           c.NetdevDeviceInclude,
		"collector.netstat.fields":                  c.NetstatFields,
		"collector.powersupply.ignored-supplies":    c.PowerSupplyIgnored,
		"collector.tapestats.ignored-devices":       c.TapestatsIgnoredDevices,
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

// deviceFilter is an include/exclude pair of regular expressions, either
// of which may be empty: a name is ignored when it matches the exclude or
// does not match the include.
type deviceFilter struct{ include, exclude *regexp.Regexp }

func newDeviceFilter(include, exclude string) (deviceFilter, error) {
	var f deviceFilter
	var err error
	if include != "" {
		if f.include, err = regexp.Compile(include); err != nil {
			return f, err
		}
	}
	if exclude != "" {
		if f.exclude, err = regexp.Compile(exclude); err != nil {
			return f, err
		}
	}
	return f, nil
}

func (f deviceFilter) ignored(name string) bool {
	return f.exclude != nil && f.exclude.MatchString(name) || f.include != nil && !f.include.MatchString(name)
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
		"arp":              newARPCollector,
		"bcache":           newBcacheCollector,
		"bcachefs":         newBcachefsCollector,
		"cpufreq":          newCpufreqCollector,
		"dmi":              newDMICollector,
		"dmmultipath":      newDMMultipathCollector,
		"edac":             newEdacCollector,
		"fibrechannel":     newFibrechannelCollector,
		"hwmon":            newHwmonCollector,
		"infiniband":       newInfinibandCollector,
		"ipvs":             newIPVSCollector,
		"kernel_hung":      newKernelHungCollector,
		"nfs":              newNFSCollector,
		"nfsd":             newNFSdCollector,
		"nvme":             newNVMeCollector,
		"powersupplyclass": newPowerSupplyClassCollector,
		"rapl":             newRaplCollector,
		"selinux":          newSelinuxCollector,
		"tapestats":        newTapestatsCollector,
		"thermal_zone":     newThermalZoneCollector,
		"watchdog":         newWatchdogCollector,
		"xfs":              newXFSCollector,
		"zfs":              newZFSCollector,
		"bonding":          newBondingCollector,
		"btrfs":            newBtrfsCollector,
		"conntrack":        newConntrackCollector,
		"cpu":              newCPUCollector,
		"diskstats":        newDiskstatsCollector,
		"entropy":          newEntropyCollector,
		"ethtool":          newEthtoolCollector,
		"filefd":           newFilefdCollector,
		"filesystem":       newFilesystemCollector,
		"loadavg":          newLoadavgCollector,
		"mdadm":            newMdadmCollector,
		"meminfo":          newMeminfoCollector,
		"netclass":         newNetclassCollector,
		"netdev":           newNetdevCollector,
		"netstat":          newNetstatCollector,
		"os":               newOSCollector,
		"pressure":         newPressureCollector,
		"schedstat":        newSchedstatCollector,
		"sockstat":         newSockstatCollector,
		"softnet":          newSoftnetCollector,
		"stat":             newStatCollector,
		"textfile":         newTextfileCollector,
		"time":             newTimeCollector,
		"timex":            newTimexCollector,
		"udp_queues":       newUDPQueuesCollector,
		"uname":            newUnameCollector,
		"vmstat":           newVmstatCollector,
	}
}
