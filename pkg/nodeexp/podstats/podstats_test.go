package podstats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"

	"github.com/nodekit/nodekit/pkg/nodeexp"
)

// fakePods is a PodLookup: uid -> {namespace, name}.
type fakePods map[string][2]string

func (f fakePods) ByUID(uid string) (string, string, bool) {
	p, ok := f[uid]
	return p[0], p[1], ok
}

func (f fakePods) Err() error { return nil }

func (f fakePods) add(ns, name, uid string) { f[uid] = [2]string{ns, name} }

func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// podDirV2 is where the kubelet puts a pod's cgroup for a driver and QoS
// class ("" is Guaranteed).
func podDirV2(driver, qos, uid string) string {
	if driver == "systemd" {
		u := strings.ReplaceAll(uid, "-", "_")
		if qos == "" {
			return filepath.Join("kubepods.slice", "kubepods-pod"+u+".slice")
		}
		return filepath.Join("kubepods.slice", "kubepods-"+qos+".slice", "kubepods-"+qos+"-pod"+u+".slice")
	}
	return filepath.Join("kubepods", qos, "pod"+uid)
}

// writePodV2 writes a cgroup v2 pod cgroup with values derived from n, and
// one container scope in it.
func writePodV2(t testing.TB, root, driver, qos, uid string, n int) {
	t.Helper()
	dir := filepath.Join(root, podDirV2(driver, qos, uid))
	writeFiles(t, dir, map[string]string{
		"cpu.stat":        fmt.Sprintf("usage_usec %d\nuser_usec 1\nsystem_usec 1\nnr_periods %d\nnr_throttled %d\nthrottled_usec %d\nnr_bursts 0\nburst_usec 0\n", n*1000000, n*10, n, n*250000),
		"memory.current":  fmt.Sprintf("%d\n", n*1000),
		"memory.stat":     fmt.Sprintf("anon 10\nfile 20\nkernel 0\nactive_anon 1\ninactive_anon 1\nactive_file 1\ninactive_file %d\nunevictable 0\n", n*100),
		"memory.events":   fmt.Sprintf("low 0\nhigh 0\nmax 3\noom 1\noom_kill %d\noom_group_kill 0\n", n),
		"pids.current":    fmt.Sprintf("%d\n", n),
		"io.stat":         fmt.Sprintf("8:0 rbytes=%d wbytes=%d rios=1 wios=1 dbytes=0 dios=0\n", n*4096, n*512),
		"cpu.pressure":    fmt.Sprintf("some avg10=0.00 avg60=0.00 avg300=0.00 total=%d\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=%d\n", n*1000000, n*500000),
		"memory.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
		"io.pressure":     "some avg10=0.00 avg60=0.00 avg300=0.00 total=2000000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=1000000\n",
	})
	scope := map[string]string{"systemd": "cri-containerd-0123abcd.scope", "cgroupfs": "0123abcd"}[driver]
	writeFiles(t, filepath.Join(dir, scope), map[string]string{"cpu.stat": "usage_usec 1\n"})
}

func newV2Root(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"cgroup.controllers": "cpuset cpu io memory pids\n"})
	return root
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

type adapter struct{ c *Collector }

func (adapter) Describe(chan<- *prometheus.Desc) {}
func (a adapter) Collect(ch chan<- prometheus.Metric) {
	sink := nodeexp.NewSink(0)
	if err := a.c.Update(context.Background(), sink); err != nil {
		sink.Send(prometheus.NewInvalidMetric(prometheus.NewDesc("update_error", "", nil, nil), err))
	}
	for _, m := range sink.Metrics() {
		ch <- m
	}
}

func TestV2BothDriversAndQoS(t *testing.T) {
	for _, driver := range []string{"systemd", "cgroupfs"} {
		t.Run(driver, func(t *testing.T) {
			root := newV2Root(t)
			pods := fakePods{}
			pods.add("default", "web", "0c5e4ad8-7bd6-4f5e-9b86-0c2d3b8d6b41")
			pods.add("default", "api", "1d6f5be9-8ce7-4a6f-8c97-1d3e4c9e7c52")
			writePodV2(t, root, driver, "", "0c5e4ad8-7bd6-4f5e-9b86-0c2d3b8d6b41", 1)
			writePodV2(t, root, driver, "burstable", "1d6f5be9-8ce7-4a6f-8c97-1d3e4c9e7c52", 2)
			// Unknown to the lookup: still reported, by uid only.
			writePodV2(t, root, driver, "besteffort", "2e7a6cfa-9df8-4b7a-9da8-2e4f5dafad63", 3)
			// A static pod: its uid is the kubelet's hash of the manifest.
			pods.add("kube-system", "etcd-node-a", "9f86d081884c7d659a2feaa0c55ad015")
			writePodV2(t, root, driver, "burstable", "9f86d081884c7d659a2feaa0c55ad015", 4)
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(adapter{New(Config{CgroupRoot: root}, pods, discard())})
			want := `
# HELP nodeexp_pod_cpu_usage_seconds_total CPU time consumed by all containers of the pod, from the pod cgroup.
# TYPE nodeexp_pod_cpu_usage_seconds_total counter
nodeexp_pod_cpu_usage_seconds_total{namespace="",pod="",uid="2e7a6cfa-9df8-4b7a-9da8-2e4f5dafad63"} 3
nodeexp_pod_cpu_usage_seconds_total{namespace="default",pod="api",uid="1d6f5be9-8ce7-4a6f-8c97-1d3e4c9e7c52"} 2
nodeexp_pod_cpu_usage_seconds_total{namespace="default",pod="web",uid="0c5e4ad8-7bd6-4f5e-9b86-0c2d3b8d6b41"} 1
nodeexp_pod_cpu_usage_seconds_total{namespace="kube-system",pod="etcd-node-a",uid="9f86d081884c7d659a2feaa0c55ad015"} 4
# HELP nodeexp_pod_memory_working_set_bytes Memory usage minus inactive file cache: what the kubelet compares with eviction thresholds.
# TYPE nodeexp_pod_memory_working_set_bytes gauge
nodeexp_pod_memory_working_set_bytes{namespace="",pod="",uid="2e7a6cfa-9df8-4b7a-9da8-2e4f5dafad63"} 2700
nodeexp_pod_memory_working_set_bytes{namespace="default",pod="api",uid="1d6f5be9-8ce7-4a6f-8c97-1d3e4c9e7c52"} 1800
nodeexp_pod_memory_working_set_bytes{namespace="default",pod="web",uid="0c5e4ad8-7bd6-4f5e-9b86-0c2d3b8d6b41"} 900
nodeexp_pod_memory_working_set_bytes{namespace="kube-system",pod="etcd-node-a",uid="9f86d081884c7d659a2feaa0c55ad015"} 3600
# HELP nodeexp_pod_cpu_cfs_throttled_seconds_total Total time the pod cgroup was throttled by its CPU limit.
# TYPE nodeexp_pod_cpu_cfs_throttled_seconds_total counter
nodeexp_pod_cpu_cfs_throttled_seconds_total{namespace="",pod="",uid="2e7a6cfa-9df8-4b7a-9da8-2e4f5dafad63"} 0.75
nodeexp_pod_cpu_cfs_throttled_seconds_total{namespace="default",pod="api",uid="1d6f5be9-8ce7-4a6f-8c97-1d3e4c9e7c52"} 0.5
nodeexp_pod_cpu_cfs_throttled_seconds_total{namespace="default",pod="web",uid="0c5e4ad8-7bd6-4f5e-9b86-0c2d3b8d6b41"} 0.25
nodeexp_pod_cpu_cfs_throttled_seconds_total{namespace="kube-system",pod="etcd-node-a",uid="9f86d081884c7d659a2feaa0c55ad015"} 1
# HELP nodeexp_pod_pressure_io_stalled_seconds_total Total time in seconds no task of the pod could make progress for lack of io (PSI full).
# TYPE nodeexp_pod_pressure_io_stalled_seconds_total counter
nodeexp_pod_pressure_io_stalled_seconds_total{namespace="",pod="",uid="2e7a6cfa-9df8-4b7a-9da8-2e4f5dafad63"} 1
nodeexp_pod_pressure_io_stalled_seconds_total{namespace="default",pod="api",uid="1d6f5be9-8ce7-4a6f-8c97-1d3e4c9e7c52"} 1
nodeexp_pod_pressure_io_stalled_seconds_total{namespace="default",pod="web",uid="0c5e4ad8-7bd6-4f5e-9b86-0c2d3b8d6b41"} 1
nodeexp_pod_pressure_io_stalled_seconds_total{namespace="kube-system",pod="etcd-node-a",uid="9f86d081884c7d659a2feaa0c55ad015"} 1
# HELP nodeexp_pod_unnamed Pods of this scrape reported with empty namespace and pod labels: the pod lookup (the kubelet's pod log directory) could not name them.
# TYPE nodeexp_pod_unnamed gauge
nodeexp_pod_unnamed 1
`
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
				"nodeexp_pod_cpu_usage_seconds_total", "nodeexp_pod_memory_working_set_bytes",
				"nodeexp_pod_cpu_cfs_throttled_seconds_total", "nodeexp_pod_pressure_io_stalled_seconds_total",
				"nodeexp_pod_unnamed"); err != nil {
				t.Error(err)
			}
			// Every family is reported for every pod, and the unnamed count.
			if n, err := testutil.GatherAndCount(reg); err != nil || n != 4*16+1 {
				t.Errorf("GatherAndCount = %d, %v; want %d series", n, err, 4*16+1)
			}
		})
	}
}

func TestV1(t *testing.T) {
	root := t.TempDir()
	uid := "0c5e4ad8-7bd6-4f5e-9b86-0c2d3b8d6b41"
	rel := filepath.Join("kubepods.slice", "kubepods-burstable.slice", "kubepods-burstable-pod"+strings.ReplaceAll(uid, "-", "_")+".slice")
	writeFiles(t, filepath.Join(root, "cpuacct", rel), map[string]string{"cpuacct.usage": "2500000000\n"})
	writeFiles(t, filepath.Join(root, "cpu", rel), map[string]string{"cpu.stat": "nr_periods 10\nnr_throttled 2\nthrottled_time 300000000\n"})
	writeFiles(t, filepath.Join(root, "memory", rel), map[string]string{
		"memory.usage_in_bytes": "10000\n",
		"memory.stat":           "cache 5\ninactive_file 1\ntotal_inactive_file 4000\n",
		"memory.oom_control":    "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
	})
	writeFiles(t, filepath.Join(root, "pids", rel), map[string]string{"pids.current": "7\n"})
	writeFiles(t, filepath.Join(root, "blkio", rel), map[string]string{"blkio.throttle.io_service_bytes_recursive": "8:0 Read 100\n8:0 Write 20\n8:0 Sync 120\n8:16 Read 1\n8:16 Write 2\nTotal 123\n"})
	pods := fakePods{}
	pods.add("kube-system", "coredns", uid)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(adapter{New(Config{CgroupRoot: root}, pods, discard())})
	l := `{namespace="kube-system",pod="coredns",uid="0c5e4ad8-7bd6-4f5e-9b86-0c2d3b8d6b41"}`
	want := fmt.Sprintf(`
# HELP nodeexp_pod_cpu_usage_seconds_total CPU time consumed by all containers of the pod, from the pod cgroup.
# TYPE nodeexp_pod_cpu_usage_seconds_total counter
nodeexp_pod_cpu_usage_seconds_total%[1]s 2.5
# HELP nodeexp_pod_cpu_cfs_throttled_seconds_total Total time the pod cgroup was throttled by its CPU limit.
# TYPE nodeexp_pod_cpu_cfs_throttled_seconds_total counter
nodeexp_pod_cpu_cfs_throttled_seconds_total%[1]s 0.3
# HELP nodeexp_pod_memory_working_set_bytes Memory usage minus inactive file cache: what the kubelet compares with eviction thresholds.
# TYPE nodeexp_pod_memory_working_set_bytes gauge
nodeexp_pod_memory_working_set_bytes%[1]s 6000
# HELP nodeexp_pod_oom_kills_total Processes of the pod killed by the OOM killer.
# TYPE nodeexp_pod_oom_kills_total counter
nodeexp_pod_oom_kills_total%[1]s 2
# HELP nodeexp_pod_io_read_bytes_total Bytes read from block devices by the pod cgroup.
# TYPE nodeexp_pod_io_read_bytes_total counter
nodeexp_pod_io_read_bytes_total%[1]s 101
# HELP nodeexp_pod_io_written_bytes_total Bytes written to block devices by the pod cgroup.
# TYPE nodeexp_pod_io_written_bytes_total counter
nodeexp_pod_io_written_bytes_total%[1]s 22
# HELP nodeexp_pod_pids Number of tasks in the pod cgroup.
# TYPE nodeexp_pod_pids gauge
nodeexp_pod_pids%[1]s 7
`, l)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"nodeexp_pod_cpu_usage_seconds_total", "nodeexp_pod_cpu_cfs_throttled_seconds_total", "nodeexp_pod_memory_working_set_bytes",
		"nodeexp_pod_oom_kills_total", "nodeexp_pod_io_read_bytes_total", "nodeexp_pod_io_written_bytes_total", "nodeexp_pod_pids"); err != nil {
		t.Error(err)
	}
}

func TestMalformedFilesDoNotPanic(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
	}{
		{"empty files", map[string]string{"cpu.stat": "", "memory.current": "", "memory.stat": "", "io.stat": "\n\n", "cpu.pressure": ""}},
		{"garbage", map[string]string{"cpu.stat": "usage_usec\n\x00\xff", "memory.current": "max", "io.stat": "8:0 rbytes=x wbytes\n", "cpu.pressure": "some total=\nfull\n"}},
		{"negative working set", map[string]string{"memory.current": "10", "memory.stat": "inactive_file 50\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := newV2Root(t)
			writeFiles(t, filepath.Join(root, "kubepods", "pod0c5e4ad8-7bd6-4f5e-9b86-0c2d3b8d6b41"), tc.files)
			ch := nodeexp.NewSink(100)
			if err := New(Config{CgroupRoot: root}, nil, discard()).Update(context.Background(), ch); err != nil {
				t.Fatalf("Update: %v", err)
			}
			for _, m := range ch.Metrics() {
				if m.Desc().String() == New(Config{}, nil, discard()).d.workingSet.Desc().String() {
					if v := testutil.ToFloat64(prometheus.Collector(constCollector{m})); v < 0 {
						t.Errorf("working set %v < 0", v)
					}
				}
			}
		})
	}
}

type constCollector struct{ m prometheus.Metric }

func (c constCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.Desc() }
func (c constCollector) Collect(ch chan<- prometheus.Metric) { ch <- c.m }

func TestNoCgroupHierarchy(t *testing.T) {
	err := New(Config{CgroupRoot: t.TempDir()}, nil, discard()).Update(context.Background(), nodeexp.NewSink(1))
	if err == nil {
		t.Fatal("Update on an empty root succeeded, want an error")
	}
}

// BenchmarkPodCollector100 is the figure, with the files of every
// pod cgroup kept open between scrapes (nodeexp's default).
func BenchmarkPodCollector100(b *testing.B) { benchmarkPods(b, true) }

// BenchmarkPodCollector100Reopen opens and closes every file on each scrape
// (--collector.pods.keep-files-open=false).
func BenchmarkPodCollector100Reopen(b *testing.B) { benchmarkPods(b, false) }

func benchmarkPods(b *testing.B, keepOpen bool) {
	root := newV2Root(b)
	pods := fakePods{}
	for i := range 100 {
		uid := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		pods.add("bench", fmt.Sprintf("pod-%d", i), uid)
		driver := []string{"systemd", "cgroupfs"}[i%2]
		qos := []string{"", "burstable", "besteffort"}[i%3]
		writePodV2(b, root, driver, qos, uid, i+1)
	}
	c := New(Config{CgroupRoot: root, KeepFilesOpen: keepOpen}, pods, discard())
	ch := nodeexp.NewSink(4096)
	b.ReportAllocs()
	before := cpuTime(b)
	for b.Loop() {
		if err := c.Update(context.Background(), ch); err != nil {
			b.Fatal(err)
		}
		// Sixteen series per pod and nodeexp_pod_unnamed.
		if len(ch.Metrics()) != 100*16+1 {
			b.Fatalf("got %d metrics, want %d", len(ch.Metrics()), 100*16+1)
		}
		ch.Reset()
	}
	// The machine running benchmarks is often busy: CPU time per scrape is
	// the figure that does not depend on what else runs.
	b.ReportMetric(float64((cpuTime(b)-before).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user+system CPU time.
func cpuTime(tb testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestV2KeepsFilesOpenAcrossScrapes checks what caching descriptors between
// scrapes must not change: new values are read, new pods appear, removed
// pods disappear and their descriptors are closed, and Close releases all.
func TestV2KeepsFilesOpenAcrossScrapes(t *testing.T) {
	root := newV2Root(t)
	const uidA, uidB = "0c5e4ad8-7bd6-4f5e-9b86-0c2d3b8d6b41", "1d6f5be9-8ce7-4a6f-8c97-1d3e4c9e7c52"
	pods := fakePods{}
	pods.add("default", "a", uidA)
	writePodV2(t, root, "systemd", "burstable", uidA, 1)
	fdsBefore := openFDs(t)
	c := New(Config{CgroupRoot: root, KeepFilesOpen: true}, pods, discard())
	t.Cleanup(func() { c.Close() })
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(adapter{c})
	cpu := func(lines ...string) string {
		return "# HELP nodeexp_pod_cpu_usage_seconds_total CPU time consumed by all containers of the pod, from the pod cgroup.\n" +
			"# TYPE nodeexp_pod_cpu_usage_seconds_total counter\n" + strings.Join(lines, "\n") + "\n"
	}
	steps := []struct {
		name    string
		change  func()
		want    string
		openFDs int // descriptors held by the collector after the scrape
	}{
		{"first scrape", func() {}, cpu(`nodeexp_pod_cpu_usage_seconds_total{namespace="default",pod="a",uid="` + uidA + `"} 1`), 9},
		{"value changes", func() { writePodV2(t, root, "systemd", "burstable", uidA, 5) },
			cpu(`nodeexp_pod_cpu_usage_seconds_total{namespace="default",pod="a",uid="` + uidA + `"} 5`), 9},
		{"pod added, not yet known to the lookup", func() {
			writePodV2(t, root, "cgroupfs", "", uidB, 2)
		}, cpu(
			`nodeexp_pod_cpu_usage_seconds_total{namespace="",pod="",uid="`+uidB+`"} 2`,
			`nodeexp_pod_cpu_usage_seconds_total{namespace="default",pod="a",uid="`+uidA+`"} 5`), 18},
		{"lookup learns the new pod", func() { pods.add("jobs", "b", uidB) }, cpu(
			`nodeexp_pod_cpu_usage_seconds_total{namespace="default",pod="a",uid="`+uidA+`"} 5`,
			`nodeexp_pod_cpu_usage_seconds_total{namespace="jobs",pod="b",uid="`+uidB+`"} 2`), 18},
		{"pod removed", func() {
			if err := os.RemoveAll(filepath.Join(root, podDirV2("systemd", "burstable", uidA))); err != nil {
				t.Fatal(err)
			}
		}, cpu(`nodeexp_pod_cpu_usage_seconds_total{namespace="jobs",pod="b",uid="` + uidB + `"} 2`), 9},
	}
	for _, s := range steps {
		s.change()
		if err := testutil.GatherAndCompare(reg, strings.NewReader(s.want), "nodeexp_pod_cpu_usage_seconds_total"); err != nil {
			t.Errorf("%s: %v", s.name, err)
		}
		if got := openFDs(t) - fdsBefore; got != s.openFDs {
			t.Errorf("%s: collector holds %d descriptors, want %d", s.name, got, s.openFDs)
		}
	}
	c.Close()
	if got := openFDs(t) - fdsBefore; got != 0 {
		t.Errorf("after Close: collector holds %d descriptors, want 0", got)
	}
}

// TestListDir checks the getdents parsing against os.ReadDir on a
// directory large enough to need several getdents calls.
func TestListDir(t *testing.T) {
	dir := t.TempDir()
	want := map[string]bool{}
	for i := range 700 {
		name := fmt.Sprintf("kubepods-burstable-pod%08x_0000_4000_8000_%012x.slice", i, i)
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		want[name] = true
	}
	writeFiles(t, dir, map[string]string{"cgroup.procs": "", "cpu.stat": ""})
	got := map[string]bool{}
	buf, err := listDir(dir, nil, func(name []byte) { got[string(name)] = true })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("listed %d directories, want %d", len(got), len(want))
	}
	for name := range want {
		if !got[name] {
			t.Errorf("%s not listed", name)
			break
		}
	}
	if _, err := listDir(filepath.Join(dir, "missing"), buf, func([]byte) {}); !errors.Is(err, unix.ENOENT) {
		t.Errorf("listDir(missing) = %v, want ENOENT", err)
	}
}

// TestV2ReopenHoldsNoDescriptors checks that without KeepFilesOpen a scrape
// leaves no descriptor open and still reads current values.
func TestV2ReopenHoldsNoDescriptors(t *testing.T) {
	root := newV2Root(t)
	const uid = "0c5e4ad8-7bd6-4f5e-9b86-0c2d3b8d6b41"
	writePodV2(t, root, "systemd", "", uid, 1)
	before := openFDs(t)
	c := New(Config{CgroupRoot: root}, nil, discard())
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(adapter{c})
	for _, n := range []int{1, 7} {
		writePodV2(t, root, "systemd", "", uid, n)
		want := fmt.Sprintf("# HELP nodeexp_pod_pids Number of tasks in the pod cgroup.\n# TYPE nodeexp_pod_pids gauge\nnodeexp_pod_pids{namespace=\"\",pod=\"\",uid=%q} %d\n", uid, n)
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "nodeexp_pod_pids"); err != nil {
			t.Error(err)
		}
		if got := openFDs(t) - before; got != 0 {
			t.Errorf("after a scrape the collector holds %d descriptors, want 0", got)
		}
	}
}

// unreadableLookup names nothing and says why, like a pod log directory
// nodeexp may not read.
type unreadableLookup struct{}

func (unreadableLookup) ByUID(string) (string, string, bool) { return "", "", false }
func (unreadableLookup) Err() error {
	return &os.PathError{Op: "open", Path: "/var/log/pods", Err: unix.EACCES}
}

// recordingHandler keeps the messages and "uid" attributes logged.
type recordingHandler struct {
	slog.Handler
	mu   *sync.Mutex
	uids *[]string
	errs *[]string
}

func (recordingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "uid":
			*h.uids = append(*h.uids, a.Value.String())
		case "err":
			*h.errs = append(*h.errs, a.Value.String())
		}
		return true
	})
	return nil
}

// TestUnnamedPodsAreCountedAndLogged: a pod the lookup cannot name is
// reported with empty namespace and pod, but never silently: it is counted
// in every scrape and logged once, with the lookup's reason.
func TestUnnamedPodsAreCountedAndLogged(t *testing.T) {
	const a, b = "0c5e4ad8-7bd6-4f5e-9b86-0c2d3b8d6b41", "1d6f5be9-8ce7-4a6f-8c97-1d3e4c9e7c52"
	for _, tc := range []struct {
		name   string
		layout func(t *testing.T) string
	}{
		{"cgroup v2", func(t *testing.T) string {
			root := newV2Root(t)
			writePodV2(t, root, "systemd", "burstable", a, 1)
			writePodV2(t, root, "cgroupfs", "", b, 2)
			return root
		}},
		{"cgroup v1", func(t *testing.T) string {
			root := t.TempDir()
			for _, uid := range []string{a, b} {
				writeFiles(t, filepath.Join(root, "cpuacct", "kubepods", "burstable", "pod"+uid), map[string]string{"cpuacct.usage": "1000\n"})
			}
			return root
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var uids, errs []string
			logger := slog.New(recordingHandler{Handler: slog.DiscardHandler, mu: new(sync.Mutex), uids: &uids, errs: &errs})
			c := New(Config{CgroupRoot: tc.layout(t), KeepFilesOpen: true}, unreadableLookup{}, logger)
			defer c.Close()
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(adapter{c})
			for range 3 {
				if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP nodeexp_pod_unnamed Pods of this scrape reported with empty namespace and pod labels: the pod lookup (the kubelet's pod log directory) could not name them.
# TYPE nodeexp_pod_unnamed gauge
nodeexp_pod_unnamed 2
`), "nodeexp_pod_unnamed"); err != nil {
					t.Fatal(err)
				}
			}
			slices.Sort(uids)
			if want := []string{a, b}; !slices.Equal(uids, want) {
				t.Errorf("logged uids %q over three scrapes, want each unnamed pod once: %q", uids, want)
			}
			for _, e := range errs {
				if !strings.Contains(e, "/var/log/pods") || !strings.Contains(e, "permission denied") {
					t.Errorf("logged reason %q does not say why the lookup failed", e)
				}
			}
		})
	}
}
