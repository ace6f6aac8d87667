//go:build e2e

package e2e

// The fault campaign on the real node (issue 17): the production failures
// nodekit must ride out, each with the DaemonSet as deploy/nodekit.yaml
// ships it. `make test` runs each scenario short; `make faults`
// (NODEKIT_FAULTS=full) runs them at full length and writes FAULTS.md, one
// row per scenario: lines written, shipped, lost (and whether the loss was
// counted exactly), duplicated; container restarts and OOM kills;
// credential answers by status; times to recover.

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

)

// faultFull reports whether the scenarios run at full length.
func faultFull() bool { return os.Getenv("NODEKIT_FAULTS") == "full" }

// faultDur is full or short, by faultFull.
func faultDur(full, short time.Duration) time.Duration {
	if faultFull() {
		return full
	}
	return short
}

// faultRow is one scenario's line of FAULTS.md.
type faultRow struct {
	Scenario   string
	Duration   time.Duration // of the fault itself
	Written    int
	Shipped    int
	Lost       int
	LostExact  string // "yes", "no" or "n/a"
	Duplicated int
	Restarts   int32
	OOMKills   int
	Creds      map[string]int // answers by status
	NodeRole   int            // answers handing a pod the node's role
	Recovery   string
	Notes      string
}

var (
	faultMu   sync.Mutex
	faultRows []faultRow
)

func recordFault(t *testing.T, r faultRow) {
	t.Logf("scenario result: %+v", r)
	faultMu.Lock()
	defer faultMu.Unlock()
	faultRows = append(faultRows, r)
}

// writeFaultReport writes the scenarios' rows to $NODEKIT_FAULTS_REPORT
// (make faults: FAULTS.md), if set; TestMain calls it.
func writeFaultReport() error {
	path := os.Getenv("NODEKIT_FAULTS_REPORT")
	if path == "" || len(faultRows) == 0 {
		return nil
	}
	var b strings.Builder
	mode := "short (make test)"
	if faultFull() {
		mode = "full length (make faults)"
	}
	fmt.Fprintf(&b, "# nodekit fault campaign\n\nWritten by `make faults` on %s: each scenario on the real node (test/realnode), nodekit installed from `make image` by README.md's steps, durations %s. Goal of every row: nothing lost (or every loss counted exactly), no duplicate beyond one batch after a SIGKILL, no restart but the crash's, no OOM kill, the node's role served 0 times.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), mode)
	b.WriteString("| scenario | fault | lines written | shipped | lost | loss counted exactly | duplicated | restarts | OOM kills | credential answers | node role served | recovery | notes |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range faultRows {
		var creds []string
		for _, k := range slices.Sorted(maps.Keys(r.Creds)) {
			creds = append(creds, fmt.Sprintf("%s: %d", k, r.Creds[k]))
		}
		fmt.Fprintf(&b, "| %s | %v | %d | %d | %d | %s | %d | %d | %d | %s | %d | %s | %s |\n",
			r.Scenario, r.Duration, r.Written, r.Shipped, r.Lost, r.LostExact, r.Duplicated, r.Restarts, r.OOMKills,
			strings.Join(creds, ", "), r.NodeRole, r.Recovery, r.Notes)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// rnSeqLoggerScript writes "<tag> <run> out|err <i>" lines until
// /tmp/stop exists, burst pairs at a time with a pause (µs) between; run is
// random per container start, so a restarted container's lines are told
// from the first one's.
func rnSeqLoggerScript(tag string, burst int, pause string) string {
	return fmt.Sprintf(`run=$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
i=0
while [ ! -e /tmp/stop ]; do
  echo "%s $run out $i"
  echo "%s $run err $i" >&2
  i=$((i+1))
  if [ $((i %% %d)) -eq 0 ]; then usleep %s; fi
done
touch /tmp/stopped
sleep 3600`, tag, tag, burst, pause)
}

// lineKey names one line of a sequence logger: run, stream and number.
type lineKey struct {
	run, stream string
	n           int
}

func parseSeqLine(tag, text string) (lineKey, bool) {
	f := strings.Fields(text)
	if len(f) != 4 || f[0] != tag {
		return lineKey{}, false
	}
	n, err := strconv.Atoi(f[3])
	if err != nil {
		return lineKey{}, false
	}
	return lineKey{f[1], f[2], n}, true
}

// accounting compares what a sequence logger wrote with what reached
// CloudWatch Logs.
type accounting struct {
	written, shipped, lost, duplicated int
	lostByRun                          map[string]int
}

// account counts a pod's lines: written is every number up to the last
// one seen (in the kubelet's files, rotated and gzipped ones included, or
// shipped) for each run and stream; shipped counts distinct lines that
// arrived; duplicated the repeats.
func (b *rnBed) account(t *testing.T, p *corev1.Pod, tag string) accounting {
	t.Helper()
	last := map[[2]string]int{}
	see := func(k lineKey) {
		if v, ok := last[[2]string{k.run, k.stream}]; !ok || k.n > v {
			last[[2]string{k.run, k.stream}] = k.n
		}
	}
	files, _ := filepath.Glob(filepath.Join("/var/log/pods", fmt.Sprintf("%s_%s_%s", p.Namespace, p.Name, p.UID), "*", "*.log*"))
	for _, f := range files {
		for _, line := range readCRIFile(t, f) {
			if k, ok := parseSeqLine(tag, line); ok {
				see(k)
			}
		}
	}
	seen := map[lineKey]int{}
	for _, r := range b.records(p) {
		if k, ok := parseSeqLine(tag, r.Log); ok {
			seen[k]++
			see(k)
		}
	}
	a := accounting{lostByRun: map[string]int{}}
	for rs, max := range last {
		for n := 0; n <= max; n++ {
			a.written++
			c := seen[lineKey{rs[0], rs[1], n}]
			switch {
			case c == 0:
				a.lost++
				a.lostByRun[rs[0]]++
			default:
				a.shipped++
				a.duplicated += c - 1
			}
		}
	}
	return a
}

// readCRIFile returns the text of every whole line of a CRI log file (the
// kubelet's, plain or gzipped), partial lines joined.
func readCRIFile(t *testing.T, path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil // rotated away meanwhile
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			t.Logf("%s: %v", path, err)
			return nil
		}
		defer gz.Close()
		r = gz
	}
	var out []string
	partial := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 4)
		if len(f) != 4 {
			continue
		}
		stream, tag, text := f[1], f[2], f[3]
		partial[stream] += text
		if tag == "F" {
			out = append(out, partial[stream])
			partial[stream] = ""
		}
	}
	return out
}

// nodekitRestarts sums the nodekit pod's container restarts and OOM kills.
func (b *rnBed) nodekitRestarts(ctx context.Context, t *testing.T) (restarts int32, ooms int) {
	pod, err := b.kit.Pod(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, cs := range pod.Status.ContainerStatuses {
		restarts += cs.RestartCount
		if term := cs.LastTerminationState.Terminated; term != nil && term.Reason == "OOMKilled" {
			ooms++
		}
		if term := cs.State.Terminated; term != nil && term.Reason == "OOMKilled" {
			ooms++
		}
	}
	return restarts, ooms
}

// waitShipped waits until every line the pod has written so far, by the
// kubelet's files, has reached CloudWatch Logs, and returns how long that
// took.
func (b *rnBed) waitShipped(ctx context.Context, t *testing.T, p *corev1.Pod, tag string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	waitFor(t, ctx, timeout, p.Name+"'s lines in CloudWatch Logs", func() (bool, string) {
		a := b.account(t, p, tag)
		return a.lost == 0 && a.written > 0, fmt.Sprintf("%+v", a)
	})
	return time.Since(start)
}

// stopWriting ends a logger's writing; the pod stays.
func (b *rnBed) stopWriting(ctx context.Context, t *testing.T, p *corev1.Pod) {
	t.Helper()
	if _, err := b.exec(ctx, p, "sh", "-c", "touch /tmp/stop; while [ ! -e /tmp/stopped ]; do usleep 50000; done"); err != nil {
		t.Fatalf("stopping %s's writer: %v", p.Name, err)
	}
}

// TestFaultAPIPartition: the agents lose the API server for 2 minutes.
// metaproxy serves the pods it knows, refuses a pod it never heard of
// (never the node's role), logship ships with the metadata it has; after
// the partition the informers catch up and a new pod works within
// seconds. No agent restarts.
func TestFaultAPIPartition(t *testing.T) {
	b := rnStart(t)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	b.shopNamespace(ctx)
	web := b.deployment(ctx, "shop", "web", 1, map[string]string{"iam.amazonaws.com/role": rnRole}, "sleep 3600")
	prober := b.pod(ctx, "shop", "prober", map[string]string{"iam.amazonaws.com/role": rnRole}, rnProberScript)
	logger := b.pod(ctx, "shop", "logger", nil, rnSeqLoggerScript("part", 10, "100000"))
	b.checkCredentials(ctx, t, web[0])

	d := faultDur(2*time.Minute, 40*time.Second)
	heal, err := b.node.PartitionAgents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	healed := false
	defer func() {
		if !healed {
			heal(context.Background())
		}
	}()
	partitionStart := time.Now()
	// A pod the kubelet starts but nodekit never hears of.
	newbie := b.pod(ctx, "shop", "newbie", map[string]string{"iam.amazonaws.com/role": rnRole}, "sleep 3600")
	creds := map[string]int{}
	status, body := b.imds(ctx, newbie, "GET", "/latest/meta-data/iam/security-credentials/"+rnRole, "")
	creds[fmt.Sprint(status)]++
	if status == 200 {
		t.Errorf("a pod metaproxy never heard of got credentials during the partition: %q", body)
	}
	// The pods it knows keep theirs.
	b.checkCredentials(ctx, t, web[0])
	shippedBefore := len(b.records(logger))
	time.Sleep(time.Until(partitionStart.Add(d)))
	if shippedAfter := len(b.records(logger)); shippedAfter <= shippedBefore {
		t.Errorf("logship shipped nothing during the partition (%d records before, %d after)", shippedBefore, shippedAfter)
	}
	if err := heal(ctx); err != nil {
		t.Fatal(err)
	}
	healed = true
	healedAt := time.Now()
	waitFor(t, ctx, 3*time.Minute, "the new pod's credentials after the partition", func() (bool, string) {
		status, body := b.imds(ctx, newbie, "GET", "/latest/meta-data/iam/security-credentials/"+rnRole, "")
		creds[fmt.Sprint(status)]++
		return status == 200, fmt.Sprintf("%d %s", status, body)
	})
	recovery := time.Since(healedAt)
	b.checkCredentials(ctx, t, newbie)

	b.stopWriting(ctx, t, logger)
	b.waitShipped(ctx, t, logger, "part", 3*time.Minute)
	a := b.account(t, logger, "part")
	statuses, roles := b.proberResults(ctx, t, prober)
	for s, n := range statuses {
		creds["prober "+s] += n
	}
	restarts, ooms := b.nodekitRestarts(ctx, t)
	if restarts != 0 || ooms != 0 {
		t.Errorf("agents restarted %d times (%d OOM kills) during the partition", restarts, ooms)
	}
	if statuses["200"] == 0 || len(statuses) != 1 {
		t.Errorf("a pod metaproxy knew was answered %v during the partition; want its credentials every time", statuses)
	}
	if a.lost != 0 || a.duplicated != 0 {
		t.Errorf("logger: %+v; want nothing lost or repeated", a)
	}
	recordFault(t, faultRow{
		Scenario: "API server partition", Duration: d, Written: a.written, Shipped: a.shipped, Lost: a.lost, LostExact: "n/a",
		Duplicated: a.duplicated, Restarts: restarts, OOMKills: ooms, Creds: creds, NodeRole: b.nodeRoleServed(roles),
		Recovery: fmt.Sprintf("new pod served %v after the partition healed", recovery.Round(100*time.Millisecond)),
	})
}

// shopNamespace creates the namespace the tests' pods live in, allowed
// their role.
func (b *rnBed) shopNamespace(ctx context.Context) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Annotations: map[string]string{"iam.amazonaws.com/allowed-roles": `["` + rnRole + `"]`}}}
	if _, err := b.node.Kube.Client().CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		b.t.Fatal(err)
	}
}

// nodeRoleServed counts keys of the node's role among roles, by ARN.
func (b *rnBed) nodeRoleServed(roles map[string]int) int {
	return roles[b.node.AWS.NodeRoleArn()]
}
