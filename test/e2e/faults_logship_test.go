//go:build e2e

package e2e

// logship's part of the fault campaign (issue 17): a log storm under the
// manifest's limits, CloudWatch Logs out of reach, and a full checkpoint
// disk, on the real node with the DaemonSet as deploy/nodekit.yaml ships
// it. Figures go to FAULTS.md through recordFault.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"

	"github.com/nodekit/nodekit/test/awsemu"
	"github.com/nodekit/nodekit/test/realnode"
)

// lsMetrics is one scrape of logship's /metrics.
type lsMetrics map[string]*dto.MetricFamily

func (b *rnBed) logshipMetrics(ctx context.Context, t *testing.T) lsMetrics {
	t.Helper()
	status, body, err := b.kit.Get(ctx, realnode.LogshipOpsPort, "/metrics")
	if err != nil || status != 200 {
		t.Fatalf("scraping logship: %d %v", status, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("logship's /metrics does not parse: %v", err)
	}
	return fams
}

// sum adds up the series of name whose labels include every pair of want.
func (m lsMetrics) sum(name string, want map[string]string) float64 {
	var v float64
	f := m[name]
	if f == nil {
		return 0
	}
series:
	for _, s := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range s.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, w := range want {
			if have[k] != w {
				continue series
			}
		}
		switch {
		case s.Counter != nil:
			v += s.Counter.GetValue()
		case s.Gauge != nil:
			v += s.Gauge.GetValue()
		case s.Untyped != nil:
			v += s.Untyped.GetValue()
		}
	}
	return v
}

// max is the largest series of name.
func (m lsMetrics) max(name string) float64 {
	var v float64
	if f := m[name]; f != nil {
		for _, s := range f.GetMetric() {
			v = max(v, s.GetGauge().GetValue())
		}
	}
	return v
}

// logshipReady is logship's /readyz: ready, or why not.
func (b *rnBed) logshipReady(ctx context.Context) (bool, string) {
	status, body, err := b.kit.Get(ctx, realnode.LogshipOpsPort, "/readyz")
	if err != nil {
		return false, err.Error()
	}
	return status == 200, strings.TrimSpace(body)
}

// logshipContainer is the logship container's status in the nodekit pod.
func (b *rnBed) logshipContainer(ctx context.Context, t *testing.T) (*corev1.Pod, string) {
	t.Helper()
	pod, err := b.kit.Pod(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == "logship" {
			return pod, strings.TrimPrefix(cs.ContainerID, "containerd://")
		}
	}
	t.Fatal("no logship container in the nodekit pod")
	return nil, ""
}

// cpuStat reads the logship container's CPU cgroup (v1): its quota (µs per
// period, -1 without a limit) and how many periods it was throttled in.
func (b *rnBed) cpuStat(ctx context.Context, t *testing.T) (quota, throttled int64) {
	t.Helper()
	pod, id := b.logshipContainer(ctx, t)
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/cpu/kubepods/*/pod"+string(pod.UID), id))
	more, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/cpu/kubepods/pod"+string(pod.UID), id))
	dirs = append(dirs, more...)
	if len(dirs) != 1 {
		t.Fatalf("logship's CPU cgroup: %v", dirs)
	}
	q, err := os.ReadFile(filepath.Join(dirs[0], "cpu.cfs_quota_us"))
	if err != nil {
		t.Fatal(err)
	}
	quota, _ = strconv.ParseInt(strings.TrimSpace(string(q)), 10, 64)
	st, err := os.ReadFile(filepath.Join(dirs[0], "cpu.stat"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(l, "nr_throttled "); ok {
			throttled, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return quota, throttled
}

// logshipWorkingSet is the logship container's working set now.
func (b *rnBed) logshipWorkingSet(ctx context.Context, t *testing.T) int64 {
	t.Helper()
	pod, id := b.logshipContainer(ctx, t)
	u, err := realnode.PodUsage(pod.UID, id)
	if err != nil {
		t.Fatal(err)
	}
	return u.WorkingSet
}

// stopAll stops the pods' writers at once (each stop waits for the
// writer's last line).
func (b *rnBed) stopAll(ctx context.Context, t *testing.T, pods []*corev1.Pod) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	errs := make([]error, len(pods))
	var wg sync.WaitGroup
	for i, p := range pods {
		wg.Go(func() {
			_, errs[i] = b.exec(ctx, p, "sh", "-c", "touch /tmp/stop; while [ ! -e /tmp/stopped ]; do usleep 50000; done")
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("stopping the writers: %v", err)
	}
}

// written counts the lines a stopped sequence logger wrote, from the
// kubelet's files (rotated and compressed ones included; the newest lines
// are always there): every number up to the last one, per run and stream.
func written(p *corev1.Pod, tag string, t *testing.T) int {
	last := map[[2]string]int{}
	files, _ := filepath.Glob(filepath.Join("/var/log/pods", fmt.Sprintf("%s_%s_%s", p.Namespace, p.Name, p.UID), "*", "*.log*"))
	for _, f := range files {
		for _, line := range readCRIFile(t, f) {
			if k, ok := parseSeqLine(tag, line); ok {
				if v, seen := last[[2]string{k.run, k.stream}]; !seen || k.n > v {
					last[[2]string{k.run, k.stream}] = k.n
				}
			}
		}
	}
	n := 0
	for _, v := range last {
		n += v + 1
	}
	return n
}

// events counts the events of a pod's stream in CloudWatch Logs, repeats
// included, without decoding them.
func (b *rnBed) events(p *corev1.Pod) int {
	prefix := fmt.Sprintf("%s_%s_%s-", p.Name, p.Namespace, p.Spec.Containers[0].Name)
	n := 0
	for _, stream := range b.node.AWS.LogStreams(rnGroup) {
		if strings.HasPrefix(stream, prefix) {
			n += len(b.node.AWS.Events(rnGroup, stream))
		}
	}
	return n
}

// catchUp waits until every line the stopped pods wrote reached CloudWatch
// Logs or was counted lost by logship, and returns how long that took and
// the largest lag logship reported meanwhile. It gives up when nothing moved
// for a minute or after timeout, with an error, so that settle can say per
// pod what is missing.
func (b *rnBed) catchUp(ctx context.Context, t *testing.T, pods []*corev1.Pod, tag string, timeout time.Duration) (time.Duration, float64) {
	t.Helper()
	start := time.Now()
	want := map[string]int{}
	for _, p := range pods {
		want[p.Name] = written(p, tag, t)
	}
	var lag float64
	last, moved := -1, time.Now()
	for {
		m := b.logshipMetrics(ctx, t)
		lag = max(lag, m.max("logship_lag_seconds"))
		behind := 0
		for _, p := range pods {
			lost := int(m.sum("logship_lost_lines_total", map[string]string{"pod": p.Name}))
			behind += max(0, want[p.Name]-b.events(p)-lost)
		}
		if behind == 0 {
			return time.Since(start), lag
		}
		if behind != last {
			last, moved = behind, time.Now()
		}
		if time.Since(moved) > time.Minute || time.Since(start) > timeout || ctx.Err() != nil {
			t.Errorf("logship did not catch up: %d lines neither shipped nor counted lost, unchanged for %v (%v after the writers stopped)",
				behind, time.Since(moved).Round(time.Second), time.Since(start).Round(time.Second))
			b.logshipLogTail(ctx, t)
			return time.Since(start), lag
		}
		time.Sleep(time.Second)
	}
}

// logshipLogTail logs logship's warnings and errors, for a failure's reader.
func (b *rnBed) logshipLogTail(ctx context.Context, t *testing.T) {
	t.Helper()
	pod, _ := b.logshipContainer(ctx, t)
	logs, err := b.node.Kubectl(ctx, "logs", "-n", realnode.NodekitNamespace, pod.Name, "-c", "logship")
	if err != nil {
		t.Logf("logship's log: %v", err)
		return
	}
	var keep []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) {
			keep = append(keep, l)
		}
	}
	if len(keep) > 40 {
		keep = keep[len(keep)-40:]
	}
	t.Logf("logship's warnings and errors (last %d):\n%s", len(keep), strings.Join(keep, "\n"))
}

// stormFigures is what logship's storm scenarios measure.
type stormFigures struct {
	written, shipped, lost, counted, duplicated, unopened int
	lostExact                                             bool
	peakLag, peakHeld, peakUnread, peakWorkingSet         float64
}

// settle accounts every pod once logship caught up: lines written, shipped,
// repeated, lost, and lost as logship counted them (per pod, exactly).
func (b *rnBed) settle(ctx context.Context, t *testing.T, pods []*corev1.Pod, tag string, f *stormFigures) {
	t.Helper()
	m := b.logshipMetrics(ctx, t)
	f.lostExact = true
	for _, p := range pods {
		a := b.account(t, p, tag)
		counted := int(m.sum("logship_lost_lines_total", map[string]string{"pod": p.Name}))
		f.written += a.written
		f.shipped += a.shipped
		f.lost += a.lost
		f.counted += counted
		f.duplicated += a.duplicated
		if a.duplicated != 0 {
			t.Errorf("%s: %d lines shipped twice", p.Name, a.duplicated)
		}
		if a.lost != counted {
			f.lostExact = false
			t.Errorf("%s: %d lines written, %d shipped, %d lost; logship counted %d lost; missing: %v", p.Name, a.written, a.shipped, a.lost, counted, a.missing)
		}
	}
	if !f.lostExact {
		var errs []string
		for op, n := range b.node.AWS.Counts() {
			if strings.Contains(op, ":") {
				errs = append(errs, fmt.Sprintf("%s %d", op, n))
			}
		}
		t.Logf("logship dropped %v and CloudWatch rejected %v events; the emulator's errors: %v",
			m.sum("logship_dropped_events_total", nil), m.sum("logship_rejected_events_total", nil), errs)
	}
	f.unopened = int(m.sum("logship_files_lost_total", map[string]string{"reason": "unopened"}))
	if f.unopened != 0 {
		f.lostExact = false
		t.Errorf("%d files were compressed and deleted before logship opened them: their lines are lost uncounted", f.unopened)
	}
}

// sample notes logship's peaks: lag, deleted files held and their unread
// bytes, memory.
func (b *rnBed) sample(ctx context.Context, t *testing.T, f *stormFigures) {
	m := b.logshipMetrics(ctx, t)
	f.peakLag = max(f.peakLag, m.max("logship_lag_seconds"))
	f.peakHeld = max(f.peakHeld, m.sum("logship_deleted_held_bytes", nil))
	f.peakUnread = max(f.peakUnread, m.sum("logship_deleted_open_bytes", nil))
	f.peakWorkingSet = max(f.peakWorkingSet, float64(b.logshipWorkingSet(ctx, t)))
}

func exactly(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

// TestFaultLogStorm: 30 pods write as fast as they can while the kubelet
// rotates their logs every few seconds at 64 KiB and compresses and deletes
// the rotated files. logship, held to its CPU limit, falls behind; it
// stays within its memory limit (no OOM kill, no restart), keeps every
// file the kubelet deletes open until it has read it, and ships every
// line once. Then the same with --max-deleted-bytes lowered to 8 MiB and
// CloudWatch Logs refusing connections, so logship must let files go: the
// lines lost are exactly those logship_lost_lines_total counts, per pod.
func TestFaultLogStorm(t *testing.T) {
	b := rnStart(t)
	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Minute)
	defer cancel()
	b.shopNamespace(ctx)
	if quota, _ := b.cpuStat(ctx, t); quota <= 0 {
		t.Fatalf("logship's CPU quota is %d: the manifest sets no CPU limit", quota)
	}

	t.Run("under the manifest's limits", func(t *testing.T) {
		pods := b.deployment(ctx, "shop", "storm", 30, nil, rnSeqLoggerScript("storm", 1000, "1"))
		_, throttledBefore := b.cpuStat(ctx, t)
		d := faultDur(time.Minute, 25*time.Second)
		var f stormFigures
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(2 * time.Second) {
			b.sample(ctx, t, &f)
		}
		b.stopAll(ctx, t, pods)
		stopped := time.Now()
		behind := 0
		for _, p := range pods {
			behind += written(p, "storm", t) - b.events(p)
		}
		catchUp, lag := b.catchUp(ctx, t, pods, "storm", 10*time.Minute)
		f.peakLag = max(f.peakLag, lag)
		_, throttledAfter := b.cpuStat(ctx, t)
		b.settle(ctx, t, pods, "storm", &f)
		restarts, ooms := b.nodekitRestarts(ctx, t)
		if restarts != 0 || ooms != 0 {
			t.Errorf("nodekit restarted %d times (%d OOM kills) in the storm", restarts, ooms)
		}
		if throttledAfter <= throttledBefore {
			t.Errorf("logship was never throttled by its CPU limit in the storm (%d throttled periods)", throttledAfter-throttledBefore)
		}
		if f.lost != 0 {
			t.Errorf("%d lines lost within the default --max-deleted-bytes", f.lost)
		}
		rate := float64(f.written) / d.Seconds()
		recordFault(t, faultRow{
			Scenario: "log storm under the manifest's limits (30 pods, kubelet rotating at 64 KiB and compressing)", Duration: d,
			Written: f.written, Shipped: f.shipped, Lost: f.lost, LostExact: exactly(f.lostExact), Duplicated: f.duplicated,
			Restarts: restarts, OOMKills: ooms, Recovery: fmt.Sprintf("caught up %v after the writers stopped", catchUp.Round(time.Second)),
			Notes: fmt.Sprintf("%.0f lines/s written; at the storm's end logship was %d lines behind (lag up to %.0f s), holding up to %.1f MiB of deleted files (%.1f MiB unread); %d CPU periods throttled at its 250m limit; working set up to %.1f MiB of its 192 MiB limit",
				rate, behind, f.peakLag, f.peakHeld/(1<<20), f.peakUnread/(1<<20), throttledAfter-throttledBefore, f.peakWorkingSet/(1<<20)),
		})
		t.Logf("stopped %v; %d lines behind; caught up in %v", stopped.Format(time.TimeOnly), behind, catchUp)
	})

	t.Run("beyond a tight deleted-file bound", func(t *testing.T) {
		const bound = 8 << 20
		b.setLogshipArg(ctx, t, fmt.Sprintf("--max-deleted-bytes=%d", bound))
		restore, err := b.node.BreakPort(ctx, realnode.LogsPort, realnode.Refuse)
		if err != nil {
			t.Fatal(err)
		}
		restored := false
		defer func() {
			if !restored {
				restore(context.Background())
			}
		}()
		pods := b.deployment(ctx, "shop", "tight", 6, nil, rnSeqLoggerScript("tight", 1000, "1"))
		d := faultDur(40*time.Second, 20*time.Second)
		var f stormFigures
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(2 * time.Second) {
			b.sample(ctx, t, &f)
		}
		b.stopAll(ctx, t, pods)
		if err := restore(ctx); err != nil {
			t.Fatal(err)
		}
		restored = true
		catchUp, _ := b.catchUp(ctx, t, pods, "tight", 10*time.Minute)
		b.settle(ctx, t, pods, "tight", &f)
		if f.counted == 0 {
			t.Errorf("nothing lost with CloudWatch Logs refused and %d MiB of deleted files allowed: the scenario proves nothing (held at most %.1f MiB)", bound>>20, f.peakHeld/(1<<20))
		}
		if f.peakHeld > bound+2<<20 {
			t.Errorf("logship held %.1f MiB of deleted files, beyond its %d MiB bound", f.peakHeld/(1<<20), bound>>20)
		}
		// Each file let go is logged with its pod and what it cost.
		pod, _ := b.logshipContainer(ctx, t)
		logs, _ := b.node.Kubectl(ctx, "logs", "-n", realnode.NodekitNamespace, pod.Name, "-c", "logship")
		if letGo := rnGrep(logs, "let go of a deleted log file"); !strings.Contains(letGo, `"pod":"tight-`) || !strings.Contains(letGo, `"lost_lines":`) {
			t.Errorf("logship's log does not name the pods and files it let go of:\n%s", letGo)
		}
		restarts, ooms := b.nodekitRestarts(ctx, t)
		m := b.logshipMetrics(ctx, t)
		recordFault(t, faultRow{
			Scenario: "log storm beyond --max-deleted-bytes=8MiB (6 pods, CloudWatch Logs refusing)", Duration: d,
			Written: f.written, Shipped: f.shipped, Lost: f.lost, LostExact: exactly(f.lostExact), Duplicated: f.duplicated,
			Restarts: restarts, OOMKills: ooms, Recovery: fmt.Sprintf("caught up %v after CloudWatch Logs returned", catchUp.Round(time.Second)),
			Notes: fmt.Sprintf("logship_lost_lines_total %d, logship_lost_bytes_total %.0f, %v files let go; deleted files held up to %.1f MiB",
				f.counted, m.sum("logship_lost_bytes_total", nil), m.sum("logship_files_lost_total", map[string]string{"reason": "held_bytes"}), f.peakHeld/(1<<20)),
		})
	})
}

// setLogshipArg adds an argument to logship's command line, as an operator
// would, and waits for the new pod.
func (b *rnBed) setLogshipArg(ctx context.Context, t *testing.T, arg string) {
	t.Helper()
	pod, _ := b.logshipContainer(ctx, t)
	i := slices.IndexFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == "logship" })
	patch := fmt.Sprintf(`[{"op":"add","path":"/spec/template/spec/containers/%d/args/-","value":%q}]`, i, arg)
	if _, err := b.node.Kubectl(ctx, "patch", "daemonset", "-n", realnode.NodekitNamespace, realnode.NodekitDaemonSet, "--type=json", "-p", patch); err != nil {
		t.Fatal(err)
	}
	if err := b.kit.WaitRollout(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, 2*time.Minute, "logship ready with "+arg, func() (bool, string) {
		return b.logshipReady(ctx)
	})
}

// TestFaultLogsOutage: CloudWatch Logs refuses connections, then lets them
// hang, then answers 503, while pods log and the kubelet rotates and
// compresses their files several times. The outage shows in logship's
// metrics and, after a minute, in its readiness; nothing is lost (every
// file the kubelet deletes meanwhile is held), and once CloudWatch Logs is
// back the backlog drains at once, each line once.
func TestFaultLogsOutage(t *testing.T) {
	b := rnStart(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	b.shopNamespace(ctx)
	var pods []*corev1.Pod
	for i := range 3 {
		pods = append(pods, b.pod(ctx, "shop", fmt.Sprintf("steady%d", i), nil, rnSeqLoggerScript("out", 20, "20000")))
	}
	waitFor(t, ctx, 2*time.Minute, "the loggers' first lines in CloudWatch Logs", func() (bool, string) {
		for _, p := range pods {
			if b.events(p) == 0 {
				return false, p.Name + " has none"
			}
		}
		return true, ""
	})

	d := faultDur(3*time.Minute, 75*time.Second)
	start := time.Now()
	var unreadyAt time.Duration
	var unreadyWhy string
	classes := map[string]float64{}
	var stalledFor float64
	rotated := map[string]bool{}
	watch := func(until time.Time) {
		for time.Now().Before(until) {
			if ready, why := b.logshipReady(ctx); !ready && unreadyAt == 0 && strings.Contains(why, "out of reach") {
				unreadyAt, unreadyWhy = time.Since(start), why
			}
			m := b.logshipMetrics(ctx, t)
			for _, c := range []string{"network", "server_error"} {
				classes[c] = max(classes[c], m.sum("logship_streams_stalled", map[string]string{"class": c}))
			}
			stalledFor = max(stalledFor, m.sum("logship_stalled_seconds", nil))
			for _, p := range pods {
				files, _ := filepath.Glob(filepath.Join("/var/log/pods", fmt.Sprintf("%s_%s_%s", p.Namespace, p.Name, p.UID), "*", "0.log.*"))
				for _, f := range files {
					rotated[strings.TrimSuffix(f, ".gz")] = true
				}
			}
			time.Sleep(2 * time.Second)
		}
	}
	restore, err := b.node.BreakPort(ctx, realnode.LogsPort, realnode.Refuse)
	if err != nil {
		t.Fatal(err)
	}
	watch(start.Add(d / 3))
	if err := restore(ctx); err != nil {
		t.Fatal(err)
	}
	if restore, err = b.node.BreakPort(ctx, realnode.LogsPort, realnode.Hang); err != nil {
		t.Fatal(err)
	}
	watch(start.Add(2 * d / 3))
	b.node.AWS.SetFault("PutLogEvents", awsemu.Fault{ServerErrorEvery: 1})
	if err := restore(ctx); err != nil {
		t.Fatal(err)
	}
	watch(start.Add(d))
	m := b.logshipMetrics(ctx, t)
	shippedInOutage := 0
	for _, p := range pods {
		shippedInOutage += b.events(p)
	}
	b.node.AWS.SetFault("PutLogEvents", awsemu.Fault{})
	back := time.Now()
	b.stopAll(ctx, t, pods)
	drain, _ := b.catchUp(ctx, t, pods, "out", 10*time.Minute)
	var readyAgain time.Duration
	waitFor(t, ctx, 2*time.Minute, "logship ready after the outage", func() (bool, string) {
		ready, why := b.logshipReady(ctx)
		readyAgain = time.Since(back)
		return ready, why
	})

	var f stormFigures
	b.settle(ctx, t, pods, "out", &f)
	if f.lost != 0 {
		t.Errorf("%d lines lost in a %v outage", f.lost, d)
	}
	if unreadyAt == 0 {
		t.Errorf("logship stayed ready through a %v outage", d)
	}
	if classes["network"] == 0 || classes["server_error"] == 0 {
		t.Errorf("streams stalled by class during the outage: %v; want network (refused, hanging) and server_error (503)", classes)
	}
	if len(rotated) < 3*len(pods) {
		t.Errorf("the kubelet rotated %d files during the outage: the test did not see rotation and compression behind logship", len(rotated))
	}
	restarts, ooms := b.nodekitRestarts(ctx, t)
	if restarts != 0 || ooms != 0 {
		t.Errorf("nodekit restarted %d times (%d OOM kills) during the outage", restarts, ooms)
	}
	backlog := f.written - shippedInOutage
	recordFault(t, faultRow{
		Scenario: "CloudWatch Logs unreachable (refused, hanging, 503)", Duration: d,
		Written: f.written, Shipped: f.shipped, Lost: f.lost, LostExact: exactly(f.lostExact), Duplicated: f.duplicated,
		Restarts: restarts, OOMKills: ooms,
		Recovery: fmt.Sprintf("backlog of %d lines drained %v after CloudWatch Logs returned (%.0f lines/s); ready again after %v", backlog, drain.Round(time.Second), float64(backlog)/drain.Seconds(), readyAgain.Round(time.Second)),
		Notes: fmt.Sprintf("unready %v into the outage (%q); streams stalled up to %v network, %v server_error, for up to %.0f s; %d files rotated by the kubelet meanwhile; %v retries",
			unreadyAt.Round(time.Second), unreadyWhy, classes["network"], classes["server_error"], stalledFor, len(rotated), m.sum("logship_put_retries_total", nil)),
	})
}

// TestFaultCheckpointDiskFull: logship's checkpoint directory is a small
// tmpfs, and it fills up. logship stops advancing (at most the batch in
// flight beyond the checkpoint), keeps its checkpoint whole, says so in a
// metric, in its readiness and its log, and resumes by itself when space
// returns: nothing lost, nothing repeated.
func TestFaultCheckpointDiskFull(t *testing.T) {
	var stateDir string
	b := rnStartWith(t, rnOptions{beforeInstall: func(n *realnode.Node) {
		dir, err := n.CheckpointTmpfs(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		stateDir = dir
	}})
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	b.shopNamespace(ctx)
	var pods []*corev1.Pod
	for i := range 2 {
		pods = append(pods, b.pod(ctx, "shop", fmt.Sprintf("disk%d", i), nil, rnSeqLoggerScript("disk", 20, "50000")))
	}
	waitFor(t, ctx, 2*time.Minute, "the loggers' first lines in CloudWatch Logs", func() (bool, string) {
		for _, p := range pods {
			if b.events(p) == 0 {
				return false, p.Name + " has none"
			}
		}
		return true, ""
	})
	positions := filepath.Join(stateDir, "positions.json")
	waitFor(t, ctx, time.Minute, "a checkpoint on the tmpfs", func() (bool, string) {
		_, err := os.Stat(positions)
		return err == nil, fmt.Sprint(err)
	})

	fill := filepath.Join(stateDir, "fill")
	full := time.Now()
	fillDisk(t, fill)
	defer os.Remove(fill)
	var noticed time.Duration
	var why string
	waitFor(t, ctx, 2*time.Minute, "logship to report the full disk", func() (bool, string) {
		var ready bool
		ready, why = b.logshipReady(ctx)
		noticed = time.Since(full)
		return !ready && strings.Contains(why, "saving checkpoints"), why
	})
	failures := func() float64 { return b.logshipMetrics(ctx, t).sum("logship_checkpoint_write_failures_total", nil) }
	shipped := func() int {
		n := 0
		for _, p := range pods {
			n += b.events(p)
		}
		return n
	}
	// Each stream may finish the batch it had in flight or waiting out
	// its second of batching when the disk filled; its next Commit then
	// waits. Once saving has failed over a few retries (1 s, 2 s, 4 s
	// apart) every stream waits, and nothing moves while saving fails.
	waitFor(t, ctx, time.Minute, "two failed checkpoint writes", func() (bool, string) { return failures() >= 2, "" })
	f0 := failures()
	waitFor(t, ctx, 2*time.Minute, "more failed checkpoint writes", func() (bool, string) { return failures() >= f0+2, "" })
	before, held := shipped(), time.Now()
	time.Sleep(max(15*time.Second, time.Until(full.Add(faultDur(2*time.Minute, 30*time.Second)))))
	if after := shipped(); after != before {
		t.Errorf("%d events shipped over %v while no checkpoint could be saved (%d, then %d): logship ran ahead of its checkpoint", after-before, time.Since(held).Round(time.Second), before, after)
	}
	if v := b.logshipMetrics(ctx, t).sum("logship_checkpoint_write_failing", nil); v != 1 {
		t.Errorf("logship_checkpoint_write_failing = %v on a full disk", v)
	}
	pod, _ := b.logshipContainer(ctx, t)
	logs, _ := b.node.Kubectl(ctx, "logs", "-n", realnode.NodekitNamespace, pod.Name, "-c", "logship")
	if !strings.Contains(logs, "saving checkpoints failed") {
		t.Errorf("logship's log does not say that saving checkpoints fails:\n%s", rnGrep(logs, "checkpoint"))
	}
	checkWhole := func(when string) {
		data, err := os.ReadFile(positions)
		var st struct {
			Version   int
			Positions map[string]json.RawMessage
		}
		if err != nil || json.Unmarshal(data, &st) != nil || st.Version != 1 || len(st.Positions) == 0 {
			t.Errorf("the checkpoint %s: %v %q", when, err, data)
		}
		if _, err := os.Stat(positions + ".tmp"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a temporary checkpoint is left %s: %v", when, err)
		}
	}
	checkWhole("on the full disk")
	stalled := time.Since(full)

	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	var resumed time.Duration
	waitFor(t, ctx, 2*time.Minute, "logship to resume", func() (bool, string) {
		ready, why := b.logshipReady(ctx)
		resumed = time.Since(freed)
		return ready && shipped() > before, why
	})
	b.stopAll(ctx, t, pods)
	b.catchUp(ctx, t, pods, "disk", 5*time.Minute)
	var f stormFigures
	b.settle(ctx, t, pods, "disk", &f)
	if f.lost != 0 {
		t.Errorf("%d lines lost around the full disk", f.lost)
	}
	checkWhole("after the disk had space again")
	if v := b.logshipMetrics(ctx, t).sum("logship_checkpoint_write_failing", nil); v != 0 {
		t.Errorf("logship_checkpoint_write_failing = %v after space returned", v)
	}
	restarts, ooms := b.nodekitRestarts(ctx, t)
	if restarts != 0 || ooms != 0 {
		t.Errorf("nodekit restarted %d times (%d OOM kills) with its checkpoint disk full", restarts, ooms)
	}
	recordFault(t, faultRow{
		Scenario: "checkpoint disk full (1 MiB tmpfs)", Duration: stalled,
		Written: f.written, Shipped: f.shipped, Lost: f.lost, LostExact: exactly(f.lostExact), Duplicated: f.duplicated,
		Restarts: restarts, OOMKills: ooms,
		Recovery: fmt.Sprintf("shipping again %v after space returned", resumed.Round(100*time.Millisecond)),
		Notes: fmt.Sprintf("unready %v after the disk filled (%q); no event shipped over %v of failed saves; %v failed checkpoint writes, logged once a minute",
			noticed.Round(time.Second), why, stalled.Round(time.Second), failures()),
	})
}

// fillDisk writes zeros to name until its file system is full.
func fillDisk(t *testing.T, name string) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 64<<10)
	for {
		if _, err := f.Write(block); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatal(err)
		}
	}
	// The last partial blocks too.
	for _, n := range []int{4096, 512, 1} {
		for {
			if _, err := f.Write(block[:n]); err != nil {
				break
			}
		}
	}
}
