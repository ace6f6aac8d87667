package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
	"github.com/prometheus/procfs/sysfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// cpuCollector reports per-CPU time from /proc/stat and, from sysfs, which
// CPUs are online and isolated and how often their cores and packages were
// thermally throttled; with --collector.cpu.info, /proc/cpuinfo too.
type cpuCollector struct {
	series seriesCache // label pairs of the series, across scrapes
	fs     procfs.FS
	sysfs  sysfs.FS
	logger *slog.Logger
	cpu    *constmetric.Desc
	guest  *constmetric.Desc
	// withGuest is --collector.cpu.guest.
	withGuest bool

	// From sysfs.
	sysPath                         string
	isolated                        []uint16 // read once, as node_exporter does
	isolatedDesc, online            *constmetric.Desc
	coreThrottles, packageThrottles *constmetric.Desc
	info, freq, flagInfo, bugInfo   *constmetric.Desc
	withInfo, withFreq              bool
	flagsInclude, bugsInclude       *regexp.Regexp // nil: none reported

	// topo caches each CPU's place (package, core) and whether it has
	// throttle counters: a CPU's topology does not change while it is
	// there, and reading it for every CPU of every scrape was four file
	// reads per CPU (768 system calls a scrape on a 96-CPU instance).
	topoMu  sync.Mutex
	topo    map[string]cpuTopology
	topoAge int // scrapes since the cache was filled
	// Some kernels (and CPU hotplug) make counters go backwards; like
	// node_exporter, keep the last value seen so rate() never sees a reset
	// that did not happen.
	mu   sync.Mutex
	last map[int64]procfs.CPUStat

	path  string
	bufMu sync.Mutex
	buf   []byte
}

func newCPUCollector(cfg *Config, logger *slog.Logger) (nodeexp.Collector, error) {
	fs, err := procfs.NewFS(cfg.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("opening procfs %q: %w", cfg.ProcPath, err)
	}
	sfs, err := sysfs.NewFS(cfg.SysPath)
	if err != nil {
		return nil, fmt.Errorf("opening sysfs %q: %w", cfg.SysPath, err)
	}
	isolated, err := sfs.IsolatedCPUs()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading isolated CPUs: %w", err)
	}
	c := &cpuCollector{
		fs:        fs,
		sysfs:     sfs,
		sysPath:   cfg.SysPath,
		path:      filepath.Join(cfg.ProcPath, "stat"),
		logger:    logger,
		withGuest: cfg.CPUGuest,
		isolated:  isolated,
		cpu: constmetric.NewDesc("node_cpu_seconds_total",
			"Seconds the CPUs spent in each mode.", []string{"cpu", "mode"}, nil),
		guest: constmetric.NewDesc("node_cpu_guest_seconds_total",
			"Seconds the CPUs spent in guests (VMs) for each mode.", []string{"cpu", "mode"}, nil),
		isolatedDesc: constmetric.NewDesc("node_cpu_isolated",
			"Whether each core is isolated, information from /sys/devices/system/cpu/isolated.", []string{"cpu"}, nil),
		online: constmetric.NewDesc("node_cpu_online", "CPUs that are online and being scheduled.", []string{"cpu"}, nil),
		coreThrottles: constmetric.NewDesc("node_cpu_core_throttles_total",
			"Number of times this CPU core has been throttled.", []string{"package", "core"}, nil),
		packageThrottles: constmetric.NewDesc("node_cpu_package_throttles_total",
			"Number of times this CPU package has been throttled.", []string{"package"}, nil),
		info: constmetric.NewDesc("node_cpu_info", "CPU information from /proc/cpuinfo.",
			[]string{"package", "core", "cpu", "vendor", "family", "model", "model_name", "microcode", "stepping", "cachesize"}, nil),
		freq: constmetric.NewDesc("node_cpu_frequency_hertz", "CPU frequency in hertz from /proc/cpuinfo.",
			[]string{"package", "core", "cpu"}, nil),
		flagInfo: constmetric.NewDesc("node_cpu_flag_info",
			"The `flags` field of CPU information from /proc/cpuinfo taken from the first core.", []string{"flag"}, nil),
		bugInfo: constmetric.NewDesc("node_cpu_bug_info",
			"The `bugs` field of CPU information from /proc/cpuinfo taken from the first core.", []string{"bug"}, nil),
		// As node_exporter: an include filter turns the info on.
		withInfo: cfg.CPUInfo || cfg.CPUInfoFlagsInclude != "" || cfg.CPUInfoBugsInclude != "",
		// The frequency series would repeat the cpufreq collector's.
		withFreq: cfg.enabled("cpufreq"),
		last:     make(map[int64]procfs.CPUStat),
	}
	for _, f := range []struct {
		re  **regexp.Regexp
		src string
	}{{&c.flagsInclude, cfg.CPUInfoFlagsInclude}, {&c.bugsInclude, cfg.CPUInfoBugsInclude}} {
		if f.src == "" {
			continue
		}
		if *f.re, err = regexp.Compile(f.src); err != nil {
			return nil, fmt.Errorf("compiling --collector.cpu.info.flags-include or bugs-include: %w", err)
		}
	}
	return c, nil
}

// jumpBackSeconds: an idle counter dropping by more than this is a hotplug
// (the CPU restarted counting), not jitter, so the stored values reset.
const jumpBackSeconds = 3.0

func (c *cpuCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	if c.withInfo {
		if err := c.updateInfo(ch); err != nil {
			return err
		}
	}
	c.bufMu.Lock()
	var err error
	c.buf, err = readFileInto(c.path, c.buf)
	var st procStat
	if err == nil {
		st, err = parseProcStat(c.buf)
	}
	c.bufMu.Unlock()
	if err != nil {
		return fmt.Errorf("couldn't get /proc/stat: %w", err)
	}
	stats := c.monotonic(st.cpu)
	for _, id := range slices.Sorted(maps.Keys(stats)) {
		s := stats[id]
		n := strconv.FormatInt(id, 10)
		for _, m := range [...]struct {
			mode string
			v    float64
		}{{"user", s.User}, {"nice", s.Nice}, {"system", s.System}, {"idle", s.Idle}, {"iowait", s.Iowait}, {"irq", s.IRQ}, {"softirq", s.SoftIRQ}, {"steal", s.Steal}} {
			c.series.send(ch, c.cpu, prometheus.CounterValue, m.v, n, m.mode)
		}
		if c.withGuest {
			c.series.send(ch, c.guest, prometheus.CounterValue, s.Guest, n, "user")
			c.series.send(ch, c.guest, prometheus.CounterValue, s.GuestNice, n, "nice")
		}
	}
	for _, id := range c.isolated {
		c.series.send(ch, c.isolatedDesc, prometheus.GaugeValue, 1, strconv.Itoa(int(id)))
	}
	cpus, err := c.sysfs.CPUs()
	if err != nil {
		return fmt.Errorf("listing CPUs in sysfs: %w", err)
	}
	c.updateThrottles(ch, cpus)
	c.updateOnline(ch, cpus)
	return nil
}

// updateInfo reports /proc/cpuinfo: one info series per CPU, their
// frequencies, and the first CPU's flags and bugs that match the filters.
func (c *cpuCollector) updateInfo(ch *nodeexp.Sink) error {
	info, err := c.fs.CPUInfo()
	if err != nil {
		return fmt.Errorf("couldn't get cpuinfo: %w", err)
	}
	for _, p := range info {
		c.series.send(ch, c.info, prometheus.GaugeValue, 1, p.PhysicalID, p.CoreID, strconv.Itoa(int(p.Processor)),
			p.VendorID, p.CPUFamily, p.Model, p.ModelName, p.Microcode, p.Stepping, p.CacheSize)
	}
	if c.withFreq {
		for _, p := range info {
			c.series.send(ch, c.freq, prometheus.GaugeValue, p.CPUMHz*1e6, p.PhysicalID, p.CoreID, strconv.Itoa(int(p.Processor)))
		}
	}
	if len(info) == 0 {
		return nil
	}
	for _, f := range []struct {
		values []string
		re     *regexp.Regexp
		desc   *constmetric.Desc
	}{{info[0].Flags, c.flagsInclude, c.flagInfo}, {info[0].Bugs, c.bugsInclude, c.bugInfo}} {
		if f.re == nil {
			continue
		}
		for _, v := range f.values {
			if f.re.MatchString(v) {
				c.series.send(ch, f.desc, prometheus.GaugeValue, 1, v)
			}
		}
	}
	return nil
}

// cpuTopology is where a CPU sits, from sysfs.
type cpuTopology struct {
	pkg, core uint64
	placed    bool // the topology files could be read
	throttle  bool // it has a thermal_throttle directory
}

// cpuTopologyTTL is how many scrapes the topology cache serves before it
// is read again (a changed set of CPUs refreshes it at once).
const cpuTopologyTTL = 100

// topology returns the cached topology of these CPUs, reading it again
// when the set of CPUs changed or the cache is old.
func (c *cpuCollector) topology(cpus []sysfs.CPU) map[string]cpuTopology {
	c.topoMu.Lock()
	defer c.topoMu.Unlock()
	c.topoAge++
	fresh := c.topo != nil && len(c.topo) == len(cpus) && c.topoAge < cpuTopologyTTL
	for _, cpu := range cpus {
		if _, ok := c.topo[string(cpu)]; !ok {
			fresh = false
		}
	}
	if fresh {
		return c.topo
	}
	c.topo, c.topoAge = make(map[string]cpuTopology, len(cpus)), 0
	for _, cpu := range cpus {
		dir := string(cpu)
		var t cpuTopology
		pkg, err1 := readUint(filepath.Join(dir, "topology", "physical_package_id"))
		core, err2 := readUint(filepath.Join(dir, "topology", "core_id"))
		t.pkg, t.core, t.placed = pkg, core, err1 == nil && err2 == nil
		if st, err := os.Stat(filepath.Join(dir, "thermal_throttle")); err == nil && st.IsDir() {
			t.throttle = true
		}
		c.topo[dir] = t
	}
	return c.topo
}

// throttleCount reads one of a CPU's throttle counters, if it has them.
func (c *cpuCollector) throttleCount(t cpuTopology, dir, name string) (uint64, bool) {
	if !t.throttle {
		return 0, false
	}
	n, err := readUint(filepath.Join(dir, "thermal_throttle", name))
	return n, err == nil
}

// updateThrottles reports the thermal throttle counts of each core and
// package, read from the first CPU of each (their siblings repeat them).
func (c *cpuCollector) updateThrottles(ch *nodeexp.Sink, cpus []sysfs.CPU) {
	type core struct{ pkg, core uint64 }
	pkgs := map[uint64]uint64{}
	cores := map[core]uint64{}
	seenPkg := map[uint64]bool{}
	seenCore := map[core]bool{}
	topo := c.topology(cpus)
	for _, cpu := range cpus {
		t := topo[string(cpu)]
		if !t.placed {
			continue
		}
		dir := string(cpu)
		k := core{t.pkg, t.core}
		// The first CPU of each core and package speaks for it, as in
		// node_exporter, whether or not it has the counters.
		if !seenCore[k] {
			seenCore[k] = true
			if n, ok := c.throttleCount(t, dir, "core_throttle_count"); ok {
				cores[k] = n
			}
		}
		if !seenPkg[t.pkg] {
			seenPkg[t.pkg] = true
			if n, ok := c.throttleCount(t, dir, "package_throttle_count"); ok {
				pkgs[t.pkg] = n
			}
		}
	}
	for pkg, n := range pkgs {
		c.series.send(ch, c.packageThrottles, prometheus.CounterValue, float64(n), strconv.FormatUint(pkg, 10))
	}
	for k, n := range cores {
		c.series.send(ch, c.coreThrottles, prometheus.CounterValue, float64(n), strconv.FormatUint(k.pkg, 10), strconv.FormatUint(k.core, 10))
	}
}

// updateOnline reports which CPUs are online. Kernels that cannot take
// the first CPU offline give it no online file; node_exporter then reports
// none, and so does nodeexp.
func (c *cpuCollector) updateOnline(ch *nodeexp.Sink, cpus []sysfs.CPU) {
	if len(cpus) == 0 {
		return
	}
	if _, err := cpus[0].Online(); errors.Is(err, os.ErrNotExist) {
		return
	}
	for _, cpu := range cpus {
		v := 0.0
		if on, _ := cpu.Online(); on {
			v = 1
		}
		c.series.send(ch, c.online, prometheus.GaugeValue, v, cpu.Number())
	}
}

func (c *cpuCollector) monotonic(cur map[int64]procfs.CPUStat) map[int64]procfs.CPUStat {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[int64]procfs.CPUStat, len(cur))
	for id, n := range cur {
		o, seen := c.last[id]
		if !seen || o.Idle-n.Idle >= jumpBackSeconds {
			o = procfs.CPUStat{}
		}
		o.User = max(o.User, n.User)
		o.Nice = max(o.Nice, n.Nice)
		o.System = max(o.System, n.System)
		o.Idle = max(o.Idle, n.Idle)
		o.Iowait = max(o.Iowait, n.Iowait)
		o.IRQ = max(o.IRQ, n.IRQ)
		o.SoftIRQ = max(o.SoftIRQ, n.SoftIRQ)
		o.Steal = max(o.Steal, n.Steal)
		o.Guest = max(o.Guest, n.Guest)
		o.GuestNice = max(o.GuestNice, n.GuestNice)
		out[id] = o
	}
	// CPUs that went offline are forgotten, as node_exporter does.
	c.last = out
	return out
}
