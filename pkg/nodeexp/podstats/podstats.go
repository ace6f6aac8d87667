// Package podstats is nodeexp's pod collector: per-pod resource usage read
// from the pod-level cgroups the kubelet creates under kubepods (both the
// systemd and the cgroupfs cgroup drivers; cgroup v2, or v1 where that is
// what the node runs), labelled with namespace, pod and uid from the node's
// pod informer.
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
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// PodLookup finds a pod of this node by UID; *kube.Pods implements it.
type PodLookup interface {
	ByUID(uid types.UID) (*corev1.Pod, bool)
}

// Config selects the cgroup hierarchy to read.
type Config struct {
	// CgroupRoot is where the cgroup filesystem is mounted, usually
	// /sys/fs/cgroup (under --path.sysfs when running in a container).
	CgroupRoot string
}

// Collector reports nodeexp_pod_* per pod. It is safe for concurrent use.
type Collector struct {
	root   string
	pods   PodLookup
	logger *slog.Logger
	d      descs
}

type descs struct {
	cpu, periods, throttledPeriods, throttled, memUsage, workingSet, oom, pids, ioRead, ioWrite *prometheus.Desc
	psi                                                                                         map[string]*prometheus.Desc
}

var podLabels = []string{"namespace", "pod", "uid"}

// New returns a pod collector. pods may be nil, in which case series carry
// only the uid label's value (namespace and pod empty).
func New(cfg Config, pods PodLookup, logger *slog.Logger) *Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("nodeexp_pod_"+name, help, podLabels, nil)
	}
	c := &Collector{root: cfg.CgroupRoot, pods: pods, logger: logger}
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
		psi:              map[string]*prometheus.Desc{},
	}
	for _, r := range []string{"cpu", "memory", "io"} {
		c.d.psi[r+"_some"] = d("pressure_"+r+"_waiting_seconds_total", "Total time in seconds that tasks of the pod waited for "+r+" (PSI some).")
		c.d.psi[r+"_full"] = d("pressure_"+r+"_stalled_seconds_total", "Total time in seconds no task of the pod could make progress for lack of "+r+" (PSI full).")
	}
	return c
}

// podDirRE matches a pod-level cgroup: "pod<uid>" (cgroupfs driver) or
// "kubepods[-<qos>]-pod<uid with _>.slice" (systemd driver).
var podDirRE = regexp.MustCompile(`^(?:kubepods(?:-burstable|-besteffort)?-)?pod([0-9a-fA-F]{8}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{12})(?:\.slice)?$`)

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
func (c *Collector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	if _, err := os.Stat(filepath.Join(c.root, "cgroup.controllers")); err == nil {
		return c.updateV2(ctx, ch)
	}
	if _, err := os.Stat(filepath.Join(c.root, "cpuacct")); err == nil {
		return c.updateV1(ctx, ch)
	}
	return fmt.Errorf("no cgroup v2 or v1 hierarchy under %s", c.root)
}

func (c *Collector) labels(uid string) []string {
	if c.pods != nil {
		if p, ok := c.pods.ByUID(types.UID(uid)); ok {
			return []string{p.Namespace, p.Name, uid}
		}
	}
	return []string{"", "", uid}
}

// emitter sends one pod's values; a failed read of one file skips that
// family only, because pods vanish while being read. All series of a pod
// share one label-pair slice: building it per series (NewConstMetric) was
// a third of a 100-pod scrape's cost.
type emitter struct {
	ch    chan<- prometheus.Metric
	pairs []*dto.LabelPair
}

func newEmitter(ch chan<- prometheus.Metric, labelValues []string) emitter {
	pairs := make([]*dto.LabelPair, len(podLabels))
	for i, n := range podLabels { // podLabels is sorted, as Write requires
		pairs[i] = &dto.LabelPair{Name: proto.String(n), Value: proto.String(strings.ToValidUTF8(labelValues[i], "\uFFFD"))}
	}
	return emitter{ch: ch, pairs: pairs}
}

func (e emitter) send(d *prometheus.Desc, t prometheus.ValueType, v float64) {
	e.ch <- &podMetric{desc: d, typ: t, val: v, pairs: e.pairs}
}

// podMetric is a constant metric with shared, pre-validated label pairs.
type podMetric struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	val   float64
	pairs []*dto.LabelPair
}

func (m *podMetric) Desc() *prometheus.Desc { return m.desc }

func (m *podMetric) Write(out *dto.Metric) error {
	out.Label = m.pairs
	switch m.typ {
	case prometheus.CounterValue:
		out.Counter = &dto.Counter{Value: proto.Float64(m.val)}
	default:
		out.Gauge = &dto.Gauge{Value: proto.Float64(m.val)}
	}
	return nil
}

func (c *Collector) updateV2(ctx context.Context, ch chan<- prometheus.Metric) error {
	buf := make([]byte, 0, 8192)
	for _, p := range findPods(c.root) {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, err := openDir(filepath.Join(c.root, p.rel), buf)
		if err != nil {
			continue // the pod went away since the listing
		}
		c.podV2(d, newEmitter(ch, c.labels(p.uid)))
		buf = d.buf // keep a buffer that grew
		d.close()
	}
	return nil
}

func (c *Collector) podV2(d *dirReader, e emitter) {
	var kv keyValues
	if kv.set(d.read("cpu.stat")) {
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
	if cur, ok := parseFloat(d.read("memory.current")); ok {
		e.send(c.d.memUsage, prometheus.GaugeValue, cur)
		if kv.set(d.read("memory.stat")) {
			inactive, _ := kv.get("inactive_file")
			e.send(c.d.workingSet, prometheus.GaugeValue, max(cur-inactive, 0))
		}
	}
	if kv.set(d.read("memory.events")) {
		if v, ok := kv.get("oom_kill"); ok {
			e.send(c.d.oom, prometheus.CounterValue, v)
		}
	}
	if v, ok := parseFloat(d.read("pids.current")); ok {
		e.send(c.d.pids, prometheus.GaugeValue, v)
	}
	if r, w, ok := parseIOStatV2(d.read("io.stat")); ok {
		e.send(c.d.ioRead, prometheus.CounterValue, r)
		e.send(c.d.ioWrite, prometheus.CounterValue, w)
	}
	for _, res := range [...]string{"cpu", "memory", "io"} {
		some, full, ok := parsePressure(d.read(res + ".pressure"))
		if !ok {
			continue
		}
		e.send(c.d.psi[res+"_some"], prometheus.CounterValue, some)
		if full >= 0 {
			e.send(c.d.psi[res+"_full"], prometheus.CounterValue, full)
		}
	}
}

// updateV1 reads the per-controller hierarchies of cgroup v1. Pods are
// discovered in cpuacct; the other controllers hold the same relative path.
func (c *Collector) updateV1(ctx context.Context, ch chan<- prometheus.Metric) error {
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
