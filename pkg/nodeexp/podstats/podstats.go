// Package podstats is nodeexp's pod collector: per-pod resource usage read
// from the pod-level cgroups the kubelet creates under kubepods (both the
// systemd and the cgroupfs cgroup drivers; cgroup v2, or v1 where that is
// what the node runs), labelled with namespace, pod and uid from a
// PodLookup (nodeexp's reads the kubelet's pod log directories).
//
// The pod-level cgroup aggregates every container of the pod, whichever
// runtime created them (containerd "cri-containerd-<id>.scope", CRI-O
// "crio-<id>.scope", docker "docker-<id>.scope" under systemd, bare ids
// under cgroupfs), so one directory per pod is read and container scopes
// never need to be enumerated. Metric names start with nodeexp_pod_ so they
// never collide with the kubelet's cAdvisor container_* series.
package podstats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// PodLookup names a pod of this node from the UID in its cgroup's name
// (with dashes, as the cgroupfs driver writes it); *podnames.Dir
// implements it. A pod's namespace and name never change, so the
// collector remembers an answer for as long as the pod's cgroup exists.
type PodLookup interface {
	ByUID(uid string) (namespace, pod string, ok bool)
	// Err returns why the lookup could not read its source the last time
	// it tried, or nil; it explains a miss in the log.
	Err() error
}

// Config selects the cgroup hierarchy to read.
type Config struct {
	// CgroupRoot is where the cgroup filesystem is mounted, usually
	// /sys/fs/cgroup (under --path.sysfs when running in a container).
	CgroupRoot string
	// KeepFilesOpen keeps each pod cgroup's files open between scrapes
	// (cgroup v2): a 100-pod scrape then costs ~1 ms of CPU instead of
	// ~5 ms, and nodeexp's memory cgroup is charged ~4.4 KiB of kernel
	// memory per open file (measured: struct file plus the seq_file page),
	// ~4 MiB for 100 pods, which VmRSS does not show.
	KeepFilesOpen bool
}

// Collector reports nodeexp_pod_* per pod. It is safe for concurrent use.
type Collector struct {
	root   string
	keep   bool
	pods   PodLookup
	logger *slog.Logger
	d      descs

	// sem lets one Update at a time own the state below (overlapping
	// scrapes wait for each other, or for their deadline).
	sem  chan struct{}
	gen  uint64
	open [len(podParents)]map[string]*openPod // by directory name, per parent
	buf  []byte                               // file contents
	// dirBuf holds directory entries; it is apart from buf because pods
	// are read while their parent's entries are being walked.
	dirBuf []byte
	// unnamed holds the pods of this scrape the lookup could not name,
	// warned maps each such pod's uid to the last scrape that reported
	// it: a pod is logged once, when it is first reported unnamed.
	unnamed int
	warned  map[string]uint64
}

type descs struct {
	cpu, periods, throttledPeriods, throttled, memUsage, workingSet, oom, pids, ioRead, ioWrite *constmetric.Desc
	// PSI families of cpu, memory and io, in that order.
	psiSome, psiFull [3]*constmetric.Desc
	unnamed          *constmetric.Desc
}

var podLabels = []string{"namespace", "pod", "uid"}

// New returns a pod collector. pods may be nil. A pod the lookup does not
// know is still reported, with its uid and empty namespace and pod: its
// usage is real, and hiding it would make the pods' sum disagree with the
// node's. Such pods are never silent: each is logged once, and
// nodeexp_pod_unnamed counts them in every scrape.
func New(cfg Config, pods PodLookup, logger *slog.Logger) *Collector {
	d := func(name, help string) *constmetric.Desc {
		return constmetric.NewDesc("nodeexp_pod_"+name, help, podLabels, nil)
	}
	c := &Collector{root: cfg.CgroupRoot, keep: cfg.KeepFilesOpen, pods: pods, logger: logger, sem: make(chan struct{}, 1), warned: map[string]uint64{}}
	for i := range c.open {
		c.open[i] = make(map[string]*openPod)
	}
	c.d = descs{
		cpu:              d("cpu_usage_seconds_total", "CPU time consumed by all containers of the pod, from the pod cgroup."),
		periods:          d("cpu_cfs_periods_total", "Elapsed CFS enforcement periods of the pod cgroup."),
		throttledPeriods: d("cpu_cfs_throttled_periods_total", "CFS periods in which the pod cgroup was throttled."),
		throttled:        d("cpu_cfs_throttled_seconds_total", "Total time the pod cgroup was throttled by its CPU limit."),
		memUsage:         d("memory_usage_bytes", "Memory charged to the pod cgroup, including page cache."),
		workingSet:       d("memory_working_set_bytes", "Memory usage minus inactive file cache: what the kubelet compares with eviction thresholds."),
		oom:              d("oom_kills_total", "Processes of the pod killed by the OOM killer."),
		pids:             d("pids", "Number of tasks in the pod cgroup."),
		ioRead:           d("io_read_bytes_total", "Bytes read from block devices by the pod cgroup."),
		ioWrite:          d("io_written_bytes_total", "Bytes written to block devices by the pod cgroup."),
	}
	for i, r := range []string{"cpu", "memory", "io"} {
		c.d.psiSome[i] = d("pressure_"+r+"_waiting_seconds_total", "Total time in seconds that tasks of the pod waited for "+r+" (PSI some).")
		c.d.psiFull[i] = d("pressure_"+r+"_stalled_seconds_total", "Total time in seconds no task of the pod could make progress for lack of "+r+" (PSI full).")
	}
	c.d.unnamed = constmetric.NewDesc("nodeexp_pod_unnamed",
		"Pods of this scrape reported with empty namespace and pod labels: the pod lookup (the kubelet's pod log directory) could not name them.", nil, nil)
	return c
}

// podDirRE matches a pod-level cgroup: "pod<uid>" (cgroupfs driver) or
// "kubepods[-<qos>]-pod<uid with _>.slice" (systemd driver). The uid is a
// UUID, or for a static pod the kubelet's 32-digit hash of its manifest.
var podDirRE = regexp.MustCompile(`^(?:kubepods(?:-burstable|-besteffort)?-)?pod([0-9a-fA-F]{8}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{12}|[0-9a-fA-F]{32})(?:\.slice)?$`)

// podCgroup is one pod's cgroup path relative to a hierarchy root.
type podCgroup struct {
	uid string
	rel string
}

// findPods lists the pod cgroups under base (a v2 root or one v1
// controller's root) for both drivers and all QoS classes.
func findPods(base string) []podCgroup {
	var out []podCgroup
	for _, top := range []string{"kubepods.slice", "kubepods"} {
		for _, qos := range []string{"", "burstable", "besteffort"} {
			dir := top
			if qos != "" {
				if top == "kubepods.slice" {
					dir = filepath.Join(top, "kubepods-"+qos+".slice")
				} else {
					dir = filepath.Join(top, qos)
				}
			}
			entries, err := os.ReadDir(filepath.Join(base, dir))
			if err != nil {
				continue
			}
			for _, e := range entries {
				if !e.IsDir() {
					continue
				}
				m := podDirRE.FindStringSubmatch(e.Name())
				if m == nil {
					continue
				}
				out = append(out, podCgroup{uid: strings.ReplaceAll(m[1], "_", "-"), rel: filepath.Join(dir, e.Name())})
			}
		}
	}
	return out
}

// Update reports every pod cgroup found on this scrape.
func (c *Collector) Update(ctx context.Context, ch *nodeexp.Sink) error {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.sem }()
	c.gen++
	c.unnamed = 0
	var err error
	switch {
	case exists(filepath.Join(c.root, "cgroup.controllers")):
		err = c.updateV2(ctx, ch)
	case exists(filepath.Join(c.root, "cpuacct")):
		err = c.updateV1(ctx, ch)
	default:
		return fmt.Errorf("no cgroup v2 or v1 hierarchy under %s", c.root)
	}
	for uid, gen := range c.warned {
		if gen != c.gen {
			delete(c.warned, uid) // named since, or gone
		}
	}
	if err != nil {
		return err
	}
	ch.Send(new(constmetric.New(c.d.unnamed, prometheus.GaugeValue, float64(c.unnamed), nil)))
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// labels returns the label values of the pod with this uid; a pod the
// lookup cannot name is counted, and logged when first seen so.
func (c *Collector) labels(uid string) []string {
	if c.pods != nil {
		if ns, name, ok := c.pods.ByUID(uid); ok {
			return []string{ns, name, uid}
		}
	}
	c.unnamed++
	if _, logged := c.warned[uid]; !logged {
		var why error
		if c.pods != nil {
			why = c.pods.Err()
		}
		c.logger.Warn("pod reported without namespace and pod labels: the pod lookup does not know its uid", "uid", uid, "err", why)
	}
	c.warned[uid] = c.gen
	return []string{"", "", uid}
}

// emitter sends one pod's values; a failed read of one file skips that
// family only, because pods vanish while being read. All series of a pod
// share one label-pair slice: building it per series (NewConstMetric) was
// a third of a 100-pod scrape's cost.
//
// The pairs are shared, read-only, by every metric of the pod and, in v2,
// by later scrapes while the pod keeps its name.
type emitter struct {
	ch    *nodeexp.Sink
	pairs []*dto.LabelPair
	slab  []constmetric.Metric // the pod's metrics, allocated together
}

func newEmitter(ch *nodeexp.Sink, labelValues []string) *emitter {
	return &emitter{ch: ch, pairs: labelPairs(labelValues), slab: make([]constmetric.Metric, 0, maxPodSeries)}
}

func labelPairs(labelValues []string) []*dto.LabelPair {
	pairs := make([]*dto.LabelPair, len(podLabels))
	for i, n := range podLabels { // podLabels is sorted, as Write requires
		pairs[i] = &dto.LabelPair{Name: proto.String(n), Value: proto.String(strings.ToValidUTF8(labelValues[i], "\uFFFD"))}
	}
	return pairs
}

func (e *emitter) send(d *constmetric.Desc, t prometheus.ValueType, v float64) {
	if len(e.slab) == cap(e.slab) {
		e.slab = make([]constmetric.Metric, 0, maxPodSeries)
	}
	// Earlier elements stay valid: the slab is never grown in place.
	e.slab = append(e.slab, constmetric.New(d, t, v, e.pairs))
	e.ch.Send(&e.slab[len(e.slab)-1])
}

// updateV2 reads the pods of a cgroup v2 hierarchy; the caller holds sem.
func (c *Collector) updateV2(ctx context.Context, ch *nodeexp.Sink) error {
	for i, dir := range podParents {
		var err error
		c.dirBuf, err = listDir(filepath.Join(c.root, dir), c.dirBuf, func(name []byte) {
			p := c.open[i][string(name)]
			if p == nil {
				m := podDirRE.FindSubmatch(name)
				if m == nil {
					return
				}
				p = c.openPod(filepath.Join(c.root, dir, string(name)), strings.ReplaceAll(string(m[1]), "_", "-"))
				if p == nil {
					return // the pod went away since the listing
				}
				c.open[i][string(name)] = p
			}
			p.seen = c.gen
			if ctx.Err() == nil {
				c.podV2(p, ch)
			}
		})
		if err != nil && !errors.Is(err, unix.ENOENT) {
			c.logger.Debug("listing pod cgroups", "dir", dir, "err", err)
		}
	}
	if err := ctx.Err(); err != nil {
		if !c.keep {
			c.closeAll()
		}
		return err
	}
	// Pods that were not listed are gone, as are pods whose files stopped
	// reading (a cgroup removed and maybe re-created under the same name):
	// their descriptors are closed and reopened if they come back.
	for i := range c.open {
		for name, p := range c.open[i] {
			if p.seen != c.gen || p.stale || !c.keep {
				p.close()
				delete(c.open[i], name)
			}
		}
	}
	return nil
}

func (c *Collector) closeAll() {
	for i := range c.open {
		for name, p := range c.open[i] {
			p.close()
			delete(c.open[i], name)
		}
	}
}

// podParents are the directories, relative to the cgroup root, that hold
// pod cgroups, for both drivers and all QoS classes.
var podParents = [...]string{
	"kubepods.slice",
	"kubepods.slice/kubepods-burstable.slice",
	"kubepods.slice/kubepods-besteffort.slice",
	"kubepods",
	"kubepods/burstable",
	"kubepods/besteffort",
}

// Files of a v2 pod cgroup read on every scrape, indexes into openPod.fds.
const (
	fCPUStat = iota
	fMemCurrent
	fMemStat
	fMemEvents
	fPids
	fIOStat
	fCPUPressure
	fMemPressure
	fIOPressure
	nFiles
)

var v2Files = [nFiles]string{"cpu.stat", "memory.current", "memory.stat", "memory.events", "pids.current", "io.stat", "cpu.pressure", "memory.pressure", "io.pressure"}

// openPod is a pod cgroup whose files stay open between scrapes: cgroup
// files regenerate their content on every read at offset 0, so a scrape
// costs one pread(2) per file instead of openat, read and close (three
// quarters of a 100-pod scrape's CPU went to those syscalls). The price is
// one descriptor per file (nine per pod) and the kernel's per-open-file
// buffer, about 4 KiB each, charged to nodeexp's cgroup but not its RSS.
type openPod struct {
	uid  string
	fds  [nFiles]int // -1: absent in this cgroup (controller or PSI disabled)
	seen uint64      // the scrape that last listed the pod
	// stale is set when a read failed: the cgroup was removed, so the
	// descriptors are closed after this scrape.
	stale bool
	// The label pairs of the last scrape, reused while namespace and name
	// are unchanged; named is set once the lookup knew the pod.
	ns, name string
	pairs    []*dto.LabelPair
	named    bool
}

func (c *Collector) openPod(dir, uid string) *openPod {
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(dfd)
	p := &openPod{uid: uid}
	for i, name := range v2Files {
		fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			fd = -1 // absent files are not retried until the pod is reopened
		}
		p.fds[i] = fd
	}
	return p
}

func (p *openPod) close() {
	for i, fd := range p.fds {
		if fd >= 0 {
			unix.Close(fd)
			p.fds[i] = -1
		}
	}
}

// Close releases the descriptors of the pods' cgroup files. Update may be
// called again afterwards; it reopens them.
func (c *Collector) Close() error {
	c.sem <- struct{}{}
	defer func() { <-c.sem }()
	c.closeAll()
	return nil
}

// read returns the current content of one of p's files, valid until the
// next read. Only one Update runs at a time, so c.buf is not shared.
func (c *Collector) read(p *openPod, f int) ([]byte, bool) {
	fd := p.fds[f]
	if fd < 0 {
		return nil, false
	}
	if cap(c.buf) == 0 {
		c.buf = make([]byte, 8192)
	}
	for {
		n, err := unix.Pread(fd, c.buf[:cap(c.buf)], 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			p.stale = true
			return nil, false
		}
		// A cgroup file is produced whole by one read when the buffer is
		// large enough; a full buffer is grown and the file read again.
		if n < cap(c.buf) || cap(c.buf) >= maxFileSize {
			return c.buf[:n], true
		}
		c.buf = make([]byte, 2*cap(c.buf))
	}
}

// maxFileSize bounds the read buffer; no pod cgroup file read here comes
// near it (memory.stat, the largest, is a few KiB).
const maxFileSize = 1 << 20

func (c *Collector) podV2(p *openPod, ch *nodeexp.Sink) {
	e := c.emitterFor(p, ch)
	var kv keyValues
	if kv.set(c.read(p, fCPUStat)) {
		if v, ok := kv.get("usage_usec"); ok {
			e.send(c.d.cpu, prometheus.CounterValue, v/1e6)
		}
		if v, ok := kv.get("nr_periods"); ok {
			e.send(c.d.periods, prometheus.CounterValue, v)
		}
		if v, ok := kv.get("nr_throttled"); ok {
			e.send(c.d.throttledPeriods, prometheus.CounterValue, v)
		}
		if v, ok := kv.get("throttled_usec"); ok {
			e.send(c.d.throttled, prometheus.CounterValue, v/1e6)
		}
	}
	if cur, ok := parseFloat(c.read(p, fMemCurrent)); ok {
		e.send(c.d.memUsage, prometheus.GaugeValue, cur)
		if kv.set(c.read(p, fMemStat)) {
			inactive, _ := kv.get("inactive_file")
			e.send(c.d.workingSet, prometheus.GaugeValue, max(cur-inactive, 0))
		}
	}
	if kv.set(c.read(p, fMemEvents)) {
		if v, ok := kv.get("oom_kill"); ok {
			e.send(c.d.oom, prometheus.CounterValue, v)
		}
	}
	if v, ok := parseFloat(c.read(p, fPids)); ok {
		e.send(c.d.pids, prometheus.GaugeValue, v)
	}
	if r, w, ok := parseIOStatV2(c.read(p, fIOStat)); ok {
		e.send(c.d.ioRead, prometheus.CounterValue, r)
		e.send(c.d.ioWrite, prometheus.CounterValue, w)
	}
	for i, f := range [...]int{fCPUPressure, fMemPressure, fIOPressure} {
		some, full, ok := parsePressure(c.read(p, f))
		if !ok {
			continue
		}
		e.send(c.d.psiSome[i], prometheus.CounterValue, some)
		if full >= 0 {
			e.send(c.d.psiFull[i], prometheus.CounterValue, full)
		}
	}
}

// emitterFor returns the emitter of p's series. Once the lookup has named
// the pod its label pairs are kept (a pod's namespace and name never
// change); an unnamed pod is looked up again on every scrape.
func (c *Collector) emitterFor(p *openPod, ch *nodeexp.Sink) *emitter {
	if !p.named {
		lv := c.labels(p.uid)
		if p.pairs == nil || p.ns != lv[0] || p.name != lv[1] {
			p.ns, p.name = lv[0], lv[1]
			p.pairs = labelPairs(lv)
		}
		p.named = lv[1] != ""
	}
	// One allocation for all of a pod's metrics instead of one each.
	return &emitter{ch: ch, pairs: p.pairs, slab: make([]constmetric.Metric, 0, maxPodSeries)}
}

// maxPodSeries is how many series podV2 sends at most per pod.
const maxPodSeries = 16

// updateV1 reads the per-controller hierarchies of cgroup v1. Pods are
// discovered in cpuacct; the other controllers hold the same relative path.
// The caller holds sem.
func (c *Collector) updateV1(ctx context.Context, ch *nodeexp.Sink) error {
	// ctrl reads one file of a controller's hierarchy; v1 spreads a pod over
	// five directories, so the plain path API is used here.
	ctrl := func(name, rel, file string) ([]byte, bool) {
		b, err := os.ReadFile(filepath.Join(c.root, name, rel, file))
		return b, err == nil
	}
	for _, p := range findPods(filepath.Join(c.root, "cpuacct")) {
		if err := ctx.Err(); err != nil {
			return err
		}
		e := newEmitter(ch, c.labels(p.uid))
		var kv keyValues
		if v, ok := parseFloat(ctrl("cpuacct", p.rel, "cpuacct.usage")); ok {
			e.send(c.d.cpu, prometheus.CounterValue, v/1e9)
		}
		if kv.set(ctrl("cpu", p.rel, "cpu.stat")) {
			if v, ok := kv.get("nr_periods"); ok {
				e.send(c.d.periods, prometheus.CounterValue, v)
			}
			if v, ok := kv.get("nr_throttled"); ok {
				e.send(c.d.throttledPeriods, prometheus.CounterValue, v)
			}
			if v, ok := kv.get("throttled_time"); ok {
				e.send(c.d.throttled, prometheus.CounterValue, v/1e9)
			}
		}
		if cur, ok := parseFloat(ctrl("memory", p.rel, "memory.usage_in_bytes")); ok {
			e.send(c.d.memUsage, prometheus.GaugeValue, cur)
			if kv.set(ctrl("memory", p.rel, "memory.stat")) {
				inactive, _ := kv.get("total_inactive_file")
				e.send(c.d.workingSet, prometheus.GaugeValue, max(cur-inactive, 0))
			}
		}
		if kv.set(ctrl("memory", p.rel, "memory.oom_control")) {
			if v, ok := kv.get("oom_kill"); ok {
				e.send(c.d.oom, prometheus.CounterValue, v)
			}
		}
		if v, ok := parseFloat(ctrl("pids", p.rel, "pids.current")); ok {
			e.send(c.d.pids, prometheus.GaugeValue, v)
		}
		if r, w, ok := parseBlkioV1(ctrl("blkio", p.rel, "blkio.throttle.io_service_bytes_recursive")); ok {
			e.send(c.d.ioRead, prometheus.CounterValue, r)
			e.send(c.d.ioWrite, prometheus.CounterValue, w)
		}
	}
	return nil
}
