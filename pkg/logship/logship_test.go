package logship

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/pkg/kube"
	"github.com/nodekit/nodekit/pkg/logship/enrich"
	"github.com/nodekit/nodekit/pkg/logship/ship"
	"github.com/nodekit/nodekit/test/awsemu"
	"github.com/nodekit/nodekit/test/podlogs"
)

// node is the kubelet's log layout (test/podlogs) and logship's state
// directory.
type node struct {
	*podlogs.Node
	t     testing.TB
	state string
}

func newNode(t testing.TB) *node {
	pn, err := podlogs.NewNode(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &node{Node: pn, t: t, state: filepath.Join(pn.Root, "state")}
}

// container lays out a container's log in the CRI format.
func (n *node) container(ns, pod, uid, container, id string) *podlogs.Container {
	return n.add(podlogs.Spec{Namespace: ns, Pod: pod, PodUID: uid, Container: container, ContainerID: id})
}

// dockerContainer lays out a container's log in docker's json-file format.
func (n *node) dockerContainer(ns, pod, uid, container, id string) *podlogs.Container {
	return n.add(podlogs.Spec{Namespace: ns, Pod: pod, PodUID: uid, Container: container, ContainerID: id, Format: podlogs.Docker})
}

func (n *node) add(s podlogs.Spec) *podlogs.Container {
	c, err := n.Add(s)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { c.Close() })
	return c
}

// appendLog appends data, lines in c's format, to c's log.
func appendLog(t testing.TB, c *podlogs.Container, data string) {
	t.Helper()
	if err := c.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
}

// rotate rotates c's log as the kubelet does.
func rotate(t testing.TB, c *podlogs.Container) {
	t.Helper()
	if _, err := c.Rotate(); err != nil {
		t.Fatal(err)
	}
}

// criLine is one CRI line written now; tag F ends a message, P is a part.
func criLine(stream, tag, msg string) string {
	return podlogs.CRILine(time.Now(), stream, tag == "F", msg)
}

func testPod(ns, name, uid string) *kube.Pod {
	return &kube.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid), Labels: map[string]string{"app": name}},
		Spec:       kube.PodSpec{NodeName: "node-a", Containers: []kube.Container{{Name: "app", Image: "img:" + name}}},
	}
}

type shipped struct {
	Log        string `json:"log"`
	Stream     string `json:"stream"`
	Time       string `json:"time"`
	Kubernetes struct {
		PodName        string            `json:"pod_name"`
		NamespaceName  string            `json:"namespace_name"`
		PodID          string            `json:"pod_id"`
		Host           string            `json:"host"`
		ContainerName  string            `json:"container_name"`
		DockerID       string            `json:"docker_id"`
		ContainerImage string            `json:"container_image"`
		Labels         map[string]string `json:"labels"`
	} `json:"kubernetes"`
}

type harness struct {
	t      testing.TB
	n      *node
	emu    *awsemu.Emulator
	client ship.Client
	meta   *enrich.Cache
	cfg    Config
	// reg holds the metrics of the agent last started.
	reg   *prometheus.Registry
	agent *Agent
}

func newHarness(t *testing.T) *harness { return newBenchHarness(t) }

func newBenchHarness(t testing.TB) *harness {
	n := newNode(t)
	emu, url := awsemu.StartServer(t, awsemu.Options{})
	client := ship.NewClient(aws.Config{
		Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
	})
	cfg := DefaultConfig()
	cfg.ContainersDir, cfg.StateDir, cfg.ClusterName, cfg.NodeName = n.ContainersDir(), n.state, "test", "node-a"
	cfg.BatchWait = 20 * time.Millisecond
	cfg.Rescan = 50 * time.Millisecond
	cfg.MetadataWait = time.Second
	cfg.Tail.PollInterval = 5 * time.Millisecond
	cfg.MaxBackoff = 50 * time.Millisecond
	return &harness{t: t, n: n, emu: emu, client: client, meta: enrich.New(time.Minute), cfg: cfg}
}

// start runs an Agent until the returned stop is called (or the test ends).
func (h *harness) start() (stop func()) {
	h.reg = prometheus.NewRegistry()
	a, err := New(h.cfg, h.client, h.meta, h.reg, testLogger(h.t))
	if err != nil {
		h.t.Fatal(err)
	}
	h.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				h.t.Errorf("agent: %v", err)
			}
		})
	}
	h.t.Cleanup(stop)
	return stop
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

const group = "/aws/containerinsights/test/application"

// records waits until stream holds at least n events and decodes them.
func (h *harness) records(stream string, n int) []shipped {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	evs, err := h.emu.WaitEvents(ctx, group, stream, n)
	if err != nil {
		h.t.Fatal(err)
	}
	out := make([]shipped, len(evs))
	for i, e := range evs {
		if err := json.Unmarshal([]byte(e.Message), &out[i]); err != nil {
			h.t.Fatalf("event %d is not a JSON shipped: %v", i, err)
		}
	}
	return out
}

func TestShipsEveryLineInOrderWithFaults(t *testing.T) {
	h := newHarness(t)
	h.emu.SetFault("PutLogEvents", awsemu.Fault{ThrottleEvery: 7, ServerErrorEvery: 11})
	h.meta.OnAdd(testPod("shop", "web-1", "uid-web"), false)
	h.meta.OnAdd(testPod("shop", "old-1", "uid-old"), false)
	cri := h.n.container("shop", "web-1", "uid-web", "app", "aaa111")
	docker := h.n.dockerContainer("shop", "old-1", "uid-old", "app", "bbb222")
	criStream, dockerStream := cri.Stream, docker.Stream
	stop := h.start()

	const perPhase = 3000
	var wantCRI, wantDocker []string
	write := func(from, to int) {
		var criLines, dockerLines []byte
		now := time.Now()
		for i := from; i < to; i++ {
			m := fmt.Sprintf("cri line %06d", i)
			criLines = cri.AppendLine(criLines, now, "stdout", true, m)
			wantCRI = append(wantCRI, m)
			d := fmt.Sprintf("docker line %06d", i)
			dockerLines = docker.AppendLine(dockerLines, now, "stderr", true, d)
			wantDocker = append(wantDocker, d)
		}
		appendLog(t, cri, string(criLines))
		appendLog(t, docker, string(dockerLines))
	}
	write(0, perPhase)
	// kubelet rotation mid-stream: rename, then the runtime reopens 0.log.
	rotate(t, cri)
	write(perPhase, 2*perPhase)
	h.records(criStream, perPhase/2)
	// kill -9 equivalent: stop without draining, then start again.
	stop()
	write(2*perPhase, 3*perPhase)
	h.start()

	// A 40 KB line the runtime split into 16 KB fragments, a 2 MB line, and
	// invalid UTF-8.
	big40 := strings.Repeat("x", 40<<10)
	appendLog(t, cri, criLine("stdout", "P", big40[:16<<10])+criLine("stdout", "P", big40[16<<10:32<<10])+criLine("stdout", "F", big40[32<<10:]))
	wantCRI = append(wantCRI, big40)
	big2m := strings.Repeat("0123456789abcdef", (2<<20)/16)
	var frags strings.Builder
	for i := 0; i < len(big2m); i += 16 << 10 {
		tag := "P"
		if i+16<<10 >= len(big2m) {
			tag = "F"
		}
		frags.WriteString(criLine("stdout", tag, big2m[i:min(i+16<<10, len(big2m))]))
	}
	appendLog(t, cri, frags.String())
	appendLog(t, cri, criLine("stderr", "F", "bad \xff\xfe utf8"))
	appendLog(t, cri, criLine("stdout", "F", "the end"))

	recs := h.records(criStream, len(wantCRI)+4)
	for !strings.HasSuffix(recs[len(recs)-1].Log, "the end") {
		recs = h.records(criStream, len(recs)+1)
	}
	got := dedupe(t, recs)
	// got: the sequence lines, the 40 KB line, the 2 MB line's parts, the
	// replaced UTF-8 line, the end.
	for i, w := range wantCRI {
		if i >= len(got) || got[i].Log != w {
			t.Fatalf("cri shipped %d: got %.60q, want %.60q", i, at(got, i), w)
		}
	}
	rest := got[len(wantCRI):]
	var joined strings.Builder
	k := 0
	for ; k < len(rest) && joined.Len() < len(big2m); k++ {
		joined.WriteString(rest[k].Log)
	}
	if joined.String() != big2m || k < 3 {
		t.Fatalf("2 MB line came back as %d parts totalling %d bytes", k, joined.Len())
	}
	if rest[k].Log != "bad \uFFFD\uFFFD utf8" || rest[k].Stream != "stderr" {
		t.Fatalf("invalid UTF-8 shipped: %+v", rest[k])
	}
	for _, r := range got {
		k := r.Kubernetes
		if k.NamespaceName != "shop" || k.PodName != "web-1" || k.ContainerName != "app" || k.Labels["app"] != "web-1" ||
			k.PodID != "uid-web" || k.DockerID != "aaa111" || k.ContainerImage != "img:web-1" || k.Host != "node-a" {
			t.Fatalf("shipped metadata: %+v", k)
		}
	}

	drecs := h.records(dockerStream, len(wantDocker))
	dgot := dedupe(t, drecs)
	for len(dgot) < len(wantDocker) {
		dgot = dedupe(t, h.records(dockerStream, len(drecs)+1))
	}
	for i, w := range wantDocker {
		if dgot[i].Log != w || dgot[i].Stream != "stderr" {
			t.Fatalf("docker shipped %d: got %q, want %q", i, dgot[i].Log, w)
		}
	}
	if h.emu.Count("PutLogEvents") == 0 {
		t.Fatal("no puts")
	}
}

func at(rs []shipped, i int) string {
	if i < len(rs) {
		return rs[i].Log
	}
	return "<missing>"
}

// dedupe removes one repeated run of records (the batch in flight at a
// restart) and fails on anything else out of order. Lines here are
// unique, so a repeat is recognised by its text.
func dedupe(t *testing.T, recs []shipped) []shipped {
	t.Helper()
	seen := map[string]int{}
	var out []shipped
	dups := 0
	for _, r := range recs {
		if _, ok := seen[r.Log]; ok && len(r.Log) < 1000 {
			dups++
			continue
		}
		seen[r.Log] = len(out)
		out = append(out, r)
	}
	if dups > 10000 {
		t.Fatalf("%d duplicated records: more than one batch", dups)
	}
	return out
}

// target waits until the running agent follows the container log key.
func (h *harness) target(key string) *target {
	h.t.Helper()
	deadline := time.After(time.Minute)
	for {
		h.agent.mu.Lock()
		tg := h.agent.targets[key]
		h.agent.mu.Unlock()
		if tg != nil {
			return tg
		}
		select {
		case <-deadline:
			h.t.Fatalf("no reader for %s", key)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// optedOut waits until the reader of key stopped for its pod's opt-out.
func (h *harness) optedOut(key string) {
	h.t.Helper()
	select {
	case <-h.target(key).optedOut:
	case <-time.After(time.Minute):
		h.t.Fatalf("the reader of %s never stopped for the opt-out", key)
	}
}

func TestNamespaceFilterAndOptOut(t *testing.T) {
	h := newHarness(t)
	h.cfg.ExcludeNamespaces = []string{"kube-system"}
	h.meta.OnAdd(testPod("shop", "web-1", "uid-web"), false)
	quiet := testPod("shop", "quiet-1", "uid-quiet")
	quiet.Annotations = map[string]string{enrich.Annotation: "false"}
	h.meta.OnAdd(quiet, false)
	h.meta.OnAdd(testPod("kube-system", "dns-1", "uid-dns"), false)
	later := testPod("shop", "later-1", "uid-later")
	h.meta.OnAdd(later, false)
	web := h.n.container("shop", "web-1", "uid-web", "app", "a1")
	quietLog := h.n.container("shop", "quiet-1", "uid-quiet", "app", "b2")
	dns := h.n.container("kube-system", "dns-1", "uid-dns", "app", "c3")
	laterLog := h.n.container("shop", "later-1", "uid-later", "app", "d4")
	webStream, quietStream, dnsStream, laterStream := web.Stream, quietLog.Stream, dns.Stream, laterLog.Stream
	stop := h.start()
	for _, c := range []*podlogs.Container{quietLog, dns, laterLog} {
		appendLog(t, c, criLine("stdout", "F", "should this ship?"))
	}
	appendLog(t, web, criLine("stdout", "F", "web line"))
	h.records(laterStream, 1)
	h.records(webStream, 1)
	// The pod opted out from the start: its reader stops before reading.
	h.optedOut(quietStream + ".log")
	// The scan that found the others found kube-system's container too,
	// and left it alone.
	h.agent.mu.Lock()
	_, dnsFollowed := h.agent.targets[dnsStream+".log"]
	h.agent.mu.Unlock()
	if dnsFollowed {
		t.Error("a container of an excluded namespace is followed")
	}

	// The pod opts out while running: what follows stays on the node.
	optOut := later.DeepCopy()
	optOut.Annotations = map[string]string{enrich.Annotation: "false"}
	h.meta.OnUpdate(later, optOut)
	appendLog(t, laterLog, criLine("stdout", "F", "after opting out"))
	h.optedOut(laterStream + ".log")
	// Everything handed on was sent before the reader stopped; stopping
	// the agent now would cut short no put that could still ship a line.
	stop()
	for _, s := range []string{quietStream, dnsStream} {
		if evs := h.emu.Events(group, s); len(evs) != 0 {
			t.Errorf("%s shipped %d events", s, len(evs))
		}
	}
	for _, e := range h.emu.Events(group, laterStream) {
		if strings.Contains(e.Message, "after opting out") {
			t.Error("a line written after the pod opted out was shipped")
		}
	}
	if n, _ := gauge(t, h.reg, "logship_lines_read_total", "kube-system"); n != 0 {
		t.Errorf("read %v lines of an excluded namespace", n)
	}
}

// TestFinishedPodsFilesAreLetGo: a pod deleted from the API, or done
// (Succeeded), writes no more, though the kubelet leaves its files until
// it removes the container. Its file is read to the end, each line shipped
// once, and let go; rescans do not follow it again; once the container
// goes, so does its checkpoint.
func TestFinishedPodsFilesAreLetGo(t *testing.T) {
	h := newHarness(t)
	h.cfg.Tail.RotateWait = 50 * time.Millisecond
	gone, done := testPod("shop", "gone-1", "uid-gone"), testPod("shop", "job-1", "uid-job")
	h.meta.OnAdd(gone, false)
	h.meta.OnAdd(done, false)
	goneLog := h.n.container("shop", "gone-1", "uid-gone", "app", "a1")
	doneLog := h.n.container("shop", "job-1", "uid-job", "app", "b2")
	h.start()
	for _, c := range []*podlogs.Container{goneLog, doneLog} {
		appendLog(t, c, criLine("stdout", "F", "first"))
	}
	h.records(goneLog.Stream, 1)
	h.records(doneLog.Stream, 1)
	// Each container's last line, then its pod finishes.
	appendLog(t, goneLog, criLine("stdout", "F", "last words"))
	appendLog(t, doneLog, criLine("stdout", "F", "job done"))
	h.meta.OnDelete(gone)
	succeeded := done.DeepCopy()
	succeeded.Status.Phase = kube.PodSucceeded
	h.meta.OnUpdate(done, succeeded)

	for _, c := range []*podlogs.Container{goneLog, doneLog} {
		key := c.Stream + ".log"
		tg := h.target(key)
		for deadline := time.Now().Add(30 * time.Second); tg.follower.Load() != nil; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the finished pod's file is still followed", key)
			}
		}
		if recs := h.records(c.Stream, 2); len(recs) != 2 {
			t.Errorf("%s: shipped %d records, want 2", key, len(recs))
		}
	}
	if n := unlabeled(t, h.reg, "logship_files_open"); n != 0 {
		t.Errorf("%v files open after both pods finished", n)
	}
	// Rescans (every 50 ms) leave the parked targets alone: no file is
	// opened and read again.
	time.Sleep(300 * time.Millisecond)
	if n := unlabeled(t, h.reg, "logship_files_open"); n != 0 {
		t.Errorf("%v files open again after rescans", n)
	}
	for _, c := range []*podlogs.Container{goneLog, doneLog} {
		if evs := h.emu.Events(group, c.Stream); len(evs) != 2 {
			t.Errorf("%s: %d events after rescans, want 2", c.Stream, len(evs))
		}
	}
	// The kubelet removes the container: the target and its checkpoint go.
	if err := os.Remove(goneLog.Link); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		h.agent.mu.Lock()
		_, kept := h.agent.targets[goneLog.Stream+".log"]
		h.agent.mu.Unlock()
		if !kept {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the removed container's target stays")
		}
	}
	st := h.agent.store.Load()
	if _, ok := st.Get(goneLog.Stream + ".log"); ok {
		t.Error("the removed container's checkpoint stays")
	}
	if _, ok := st.Get(doneLog.Stream + ".log"); !ok {
		t.Error("the done pod's container (still on disk) lost its checkpoint")
	}
}
