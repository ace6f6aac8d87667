//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodekit/nodekit/pkg/logship/record"
	"github.com/nodekit/nodekit/test/awsemu"
	"github.com/nodekit/nodekit/test/kubeapi"
	"github.com/nodekit/nodekit/test/podlogs"
	"github.com/nodekit/nodekit/test/testbed"
)

const lsGroup = "/aws/containerinsights/e2e/application"

// lsBed is the test bed plus a kubelet-style log layout and a logship
// process running in the node namespace.
type lsBed struct {
	t         *testing.T
	bed       *testbed.Bed
	bin       string
	root      string
	node      *podlogs.Node
	state     string
	proc      *exec.Cmd
	procErr   chan error
	logs      *output
	extraArgs []string
}

func lsStartBed(t *testing.T, extraArgs ...string) *lsBed {
	bed := testbed.Start(t, testbed.Config{})
	root := t.TempDir()
	node, err := podlogs.NewNode(root)
	if err != nil {
		t.Fatal(err)
	}
	b := &lsBed{
		t: t, bed: bed, root: root, node: node, state: filepath.Join(root, "state"),
		logs: &output{}, extraArgs: extraArgs,
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	b.bin = filepath.Join(t.TempDir(), "logship")
	cmd := exec.Command("go", "build", "-o", b.bin, "./cmd/logship")
	cmd.Dir = filepath.Join(wd, "..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building logship: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		b.stop(false)
		if t.Failed() {
			t.Logf("logship output (tail):\n%s", tail(b.logs.String(), 20000))
		}
	})
	return b
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// container is one container's log as the runtime writes it (test/podlogs).
type container struct {
	*podlogs.Container
	pod *corev1.Pod
}

// addContainer creates a pod with one container, app, and lays out its
// log in format ("cri" or "docker") with container ID id.
func (b *lsBed) addContainer(ctx context.Context, spec kubeapi.PodSpec, format, id string) *container {
	b.t.Helper()
	p, err := b.bed.AddPod(ctx, spec)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.layOut(p.API, "app", format, id)
}

// layOut lays out the log of pod's container cname.
func (b *lsBed) layOut(pod *corev1.Pod, cname, format, id string) *container {
	b.t.Helper()
	f := podlogs.CRI
	if format == "docker" {
		f = podlogs.Docker
	}
	c, err := b.node.Add(podlogs.Spec{Namespace: pod.Namespace, Pod: pod.Name, PodUID: string(pod.UID), Container: cname, ContainerID: id, Format: f})
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { c.Close() })
	return &container{Container: c, pod: pod}
}

// line formats one message the way the container's runtime would, now.
func (c *container) line(stream, tag, msg string) string {
	return string(c.AppendLine(nil, time.Now(), stream, tag == "F", msg))
}

func (c *container) write(t *testing.T, data string) {
	t.Helper()
	if err := c.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
}

func (c *container) writeSeq(t *testing.T, from, to int) {
	var sb strings.Builder
	for i := from; i < to; i++ {
		sb.WriteString(c.line("stdout", "F", fmt.Sprintf("%s seq %07d", c.pod.Name, i)))
	}
	c.write(t, sb.String())
}

// rotate does what kubelet does: rename 0.log away; the runtime reopens.
func (c *container) rotate(t *testing.T) {
	if _, err := c.Rotate(); err != nil {
		t.Fatal(err)
	}
}

func (b *lsBed) start() {
	t := b.t
	node := b.bed.Sandbox.Node()
	args := append([]string{
		"--kubeconfig", b.bed.Kube.Kubeconfig(), "--node-name", testbed.NodeName, "--cluster-name", "e2e",
		"--containers-dir", b.node.ContainersDir(), "--state-dir", b.state, "--log-format", "text", "--log-level", "debug",
		"--batch-wait", "200ms", "--poll-interval", "20ms", "--rescan-interval", "1s",
		"--exclude-namespaces", "kube-system",
	}, b.extraArgs...)
	cmd := node.Command(context.WithoutCancel(t.Context()), b.bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + b.root}, b.bed.AWSEnv()...)
	cmd.Stdout, cmd.Stderr = b.logs, b.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting logship: %v", err)
	}
	b.proc, b.procErr = cmd, make(chan error, 1)
	go func() { b.procErr <- cmd.Wait() }()
}

// stop kills logship: with SIGKILL when hard (a crash), else SIGTERM.
func (b *lsBed) stop(hard bool) {
	if b.proc == nil {
		return
	}
	if hard {
		_ = b.proc.Process.Kill()
	} else {
		_ = b.proc.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-b.procErr:
	case <-time.After(20 * time.Second):
		_ = b.proc.Process.Kill()
		<-b.procErr
	}
	b.proc = nil
}

// metric sums a metric's samples from logship's /metrics in the node.
func (b *lsBed) metric(name string) float64 {
	b.t.Helper()
	resp, err := b.bed.Sandbox.Node().HTTPClient().Get("http://127.0.0.1:9182/metrics")
	if err != nil {
		b.t.Fatalf("scraping logship: %v", err)
	}
	defer resp.Body.Close()
	var total float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, name+" ") || strings.HasPrefix(l, name+"{") {
			v, _ := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			total += v
		}
	}
	return total
}

// waitFor waits until the stream's last record contains marker.
func (b *lsBed) waitFor(ctx context.Context, c *container, marker string) []record.Record {
	b.t.Helper()
	var recs []record.Record
	err := b.bed.AWS.WaitFor(ctx, func() bool {
		evs := b.bed.AWS.Events(lsGroup, c.Stream)
		if len(evs) == 0 || !strings.Contains(evs[len(evs)-1].Message, marker) {
			return false
		}
		recs = recs[:0]
		for _, e := range evs {
			var r record.Record
			if err := json.Unmarshal([]byte(e.Message), &r); err != nil {
				b.t.Errorf("event in %s is not a JSON record: %v", c.Stream, err)
				return true
			}
			recs = append(recs, r)
		}
		return true
	})
	if err != nil {
		b.t.Fatalf("waiting for %q in %s (%d events): %v", marker, c.Stream, len(b.bed.AWS.Events(lsGroup, c.Stream)), err)
	}
	return recs
}

// checkSeq verifies the "<pod> seq N" records: every N from 0 to n-1, in
// order, repeats only as one run of at most a batch (the batch in flight
// at a kill -9).
func checkSeq(t *testing.T, c *container, recs []record.Record, n int) {
	t.Helper()
	next, dups := 0, 0
	prefix := c.pod.Name + " seq "
	for _, r := range recs {
		s, ok := strings.CutPrefix(r.Log, prefix)
		if !ok {
			continue
		}
		v, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("%s: garbled record %q", c.Stream, r.Log)
		}
		switch {
		case v == next:
			next++
		case v < next:
			dups++
		default:
			t.Fatalf("%s: gap: got seq %d, want %d", c.Stream, v, next)
		}
	}
	if next != n {
		t.Fatalf("%s: got %d of %d lines", c.Stream, next, n)
	}
	if dups > 10000 {
		t.Fatalf("%s: %d repeated records, more than one batch", c.Stream, dups)
	}
	t.Logf("%s: %d lines in order, %d repeated after the kill -9", c.Stream, n, dups)
}

func checkMeta(t *testing.T, c *container, recs []record.Record) {
	t.Helper()
	for _, r := range recs {
		k := r.Kubernetes
		if k.NamespaceName != c.pod.Namespace || k.PodName != c.pod.Name || k.ContainerName != "app" ||
			k.PodID != string(c.pod.UID) || k.Host != testbed.NodeName || k.Labels["app"] != c.pod.Labels["app"] || k.ContainerImage == "" {
			t.Fatalf("%s: record metadata %+v", c.Stream, k)
		}
	}
}

func TestLogshipEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	b := lsStartBed(t)
	b.bed.AWS.SetFault("PutLogEvents", awsemu.Fault{ThrottleEvery: 7, ServerErrorEvery: 11})

	web := b.addContainer(ctx, kubeapi.PodSpec{Namespace: "shop", Name: "web", Labels: map[string]string{"app": "web"}}, "cri", "aaa111")
	api := b.addContainer(ctx, kubeapi.PodSpec{Namespace: "shop", Name: "api", Labels: map[string]string{"app": "api"}}, "cri", "bbb222")
	legacy := b.addContainer(ctx, kubeapi.PodSpec{Namespace: "batch", Name: "legacy", Labels: map[string]string{"app": "legacy"}}, "docker", "ccc333")
	quiet := b.addContainer(ctx, kubeapi.PodSpec{Namespace: "shop", Name: "quiet", Labels: map[string]string{"app": "quiet"},
		Annotations: map[string]string{"nodekit.io/logship": "false"}}, "cri", "ddd444")
	system := b.addContainer(ctx, kubeapi.PodSpec{Namespace: "kube-system", Name: "dns", Labels: map[string]string{"app": "dns"}}, "cri", "eee555")
	// The gone pod is deleted while logship is down.
	gone := b.addContainer(ctx, kubeapi.PodSpec{Namespace: "shop", Name: "gone", Labels: map[string]string{"app": "gone"}}, "cri", "fff666")
	all := []*container{web, api, legacy, gone}
	const phase = 4000

	b.start()
	for _, c := range all {
		c.writeSeq(t, 0, phase)
	}
	quiet.writeSeq(t, 0, 10)
	system.writeSeq(t, 0, 10)
	web.rotate(t) // kubelet rotation mid-stream
	for _, c := range all {
		c.writeSeq(t, phase, 2*phase)
	}
	// Let some of it ship, then crash logship mid-stream.
	if err := b.bed.AWS.WaitFor(ctx, func() bool {
		return len(b.bed.AWS.Events(lsGroup, web.Stream)) > phase/2 && len(b.bed.AWS.Events(lsGroup, gone.Stream)) > 0
	}); err != nil {
		t.Fatal(err)
	}
	b.stop(true)
	// Deleted while logship is down: the restarted logship never hears of
	// it from the API server, yet its lines keep its labels (saved with
	// the checkpoint).
	if err := kubeapi.DeletePod(ctx, b.bed.Client(), "shop", "gone"); err != nil {
		t.Fatal(err)
	}
	for _, c := range all {
		c.writeSeq(t, 2*phase, 3*phase)
	}
	b.start()

	// The api pod is deleted before its last lines are read, while
	// logship runs: they keep its labels too.
	api.write(t, api.line("stdout", "F", "api restarted-marker"))
	b.waitFor(ctx, api, "api restarted-marker")
	if err := kubeapi.DeletePod(ctx, b.bed.Client(), "shop", "api"); err != nil {
		t.Fatal(err)
	}
	api.writeSeq(t, 3*phase, 3*phase+100)

	// 40 KB lines split by the runtime into 16 KB fragments arrive whole;
	// a 2 MB line arrives as ordered parts; invalid UTF-8 is replaced.
	big40 := strings.Repeat("4", 40<<10)
	web.write(t, web.line("stdout", "P", big40[:16<<10])+web.line("stdout", "P", big40[16<<10:32<<10])+web.line("stdout", "F", big40[32<<10:]))
	big2m := strings.Repeat("0123456789abcdef", (2<<20)/16)
	var frags strings.Builder
	for i := 0; i < len(big2m); i += 16 << 10 {
		tag := "P"
		if i+16<<10 >= len(big2m) {
			tag = "F"
		}
		frags.WriteString(web.line("stdout", tag, big2m[i:i+16<<10]))
	}
	web.write(t, frags.String())
	web.write(t, web.line("stderr", "F", "bad \xff\xfe utf8"))
	for _, c := range all {
		c.write(t, c.line("stdout", "F", "END-OF-TEST"))
	}

	for _, c := range all {
		recs := b.waitFor(ctx, c, "END-OF-TEST")
		n := 3 * phase
		if c == api {
			n += 100
		}
		checkSeq(t, c, recs, n)
		checkMeta(t, c, recs)
	}
	recs := b.waitFor(ctx, web, "END-OF-TEST")
	var got40, got2m, bad int
	var joined strings.Builder
	for _, r := range recs {
		switch {
		case r.Log == big40:
			got40++
		case (joined.Len() == 0 && strings.HasPrefix(r.Log, "0123456789abcdef")) || (joined.Len() > 0 && joined.Len() < len(big2m)):
			// The parts are consecutive records.
			joined.WriteString(r.Log)
			got2m++
		case r.Log == "bad \uFFFD\uFFFD utf8" && r.Stream == "stderr":
			bad++
		}
	}
	if got40 != 1 {
		t.Errorf("40 KB line arrived %d times whole", got40)
	}
	if joined.String() != big2m || got2m < 2 {
		t.Errorf("2 MB line: %d parts, %d bytes, equal=%v", got2m, joined.Len(), joined.String() == big2m)
	}
	if bad != 1 {
		t.Errorf("invalid UTF-8 line arrived %d times replaced", bad)
	}
	for _, c := range []*container{quiet, system} {
		if evs := b.bed.AWS.Events(lsGroup, c.Stream); len(evs) != 0 {
			t.Errorf("%s should not be shipped, has %d events", c.Stream, len(evs))
		}
	}
	if v := b.metric("logship_dropped_events_total"); v != 0 {
		t.Errorf("logship dropped %v events", v)
	}
	if v := b.metric("logship_put_retries_total"); v == 0 {
		t.Errorf("no retries counted despite injected throttling and 5xx")
	}
	if b.bed.AWS.Count("PutLogEvents") == 0 {
		t.Error("no PutLogEvents")
	}
}

// TestLogshipBlackhole makes CloudWatch unreachable while lines keep
// coming: nothing is lost, and logship's memory stays within its bound.
func TestLogshipBlackhole(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	b := lsStartBed(t, "--max-buffer-bytes", strconv.Itoa(8<<20))
	web := b.addContainer(ctx, kubeapi.PodSpec{Namespace: "shop", Name: "web", Labels: map[string]string{"app": "web"}}, "cri", "aaa111")
	b.start()
	web.writeSeq(t, 0, 100)
	b.waitFor(ctx, web, "web seq 0000099")

	// Longer than logship's 20 s bound on one call, so that puts time out
	// and are retried; the real node's CloudWatch Logs outage
	// (TestFaultLogsOutage) is the long one.
	outage := 25 * time.Second
	if testing.Short() {
		outage = 15 * time.Second
	}
	b.bed.AWS.SetFault("PutLogEvents", awsemu.Fault{Blackhole: true})
	const total = 300000 // ~40 MB of lines, far more than the buffer
	deadline := time.Now().Add(outage)
	var peakRSS int64
	for i := 100; i < total; i += 10000 {
		web.writeSeq(t, i, min(i+10000, total))
		peakRSS = max(peakRSS, rss(t, b.proc.Process.Pid))
	}
	// Keep the outage going for its full length, watching memory.
	for time.Now().Before(deadline) {
		peakRSS = max(peakRSS, rss(t, b.proc.Process.Pid))
		if buffered := b.metric("logship_buffered_bytes"); buffered > 8<<20 {
			t.Fatalf("buffered %v bytes over the 8 MiB bound", buffered)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(time.Second): // sampling period of an external measurement
		}
	}
	b.bed.AWS.ClearFaults()
	web.write(t, web.line("stdout", "F", "END-OF-TEST"))
	recs := b.waitFor(ctx, web, "END-OF-TEST")
	checkSeq(t, web, recs, total)
	t.Logf("peak RSS during the outage: %.1f MiB", float64(peakRSS)/(1<<20))
	if peakRSS > 100<<20 {
		t.Errorf("peak RSS %d bytes during the outage", peakRSS)
	}
}

func rss(t *testing.T, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading logship's memory: %v", err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
