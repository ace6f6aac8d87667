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
	"encoding/json"
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

	"github.com/nodekit/nodekit/test/awsemu"
	"github.com/nodekit/nodekit/test/realnode"
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
	// Failed says the scenario's test failed (its log says why): a row
	// is written either way, and must not read as a success.
	Failed bool
}

var (
	faultMu   sync.Mutex
	faultRows []faultRow
)

func recordFault(t *testing.T, r faultRow) {
	r.Failed = t.Failed()
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
	b.WriteString("| scenario | test | fault | lines written | shipped | lost | loss counted exactly | duplicated | restarts | OOM kills | credential answers | node role served | recovery | notes |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range faultRows {
		var creds []string
		for _, k := range slices.Sorted(maps.Keys(r.Creds)) {
			creds = append(creds, fmt.Sprintf("%s: %d", k, r.Creds[k]))
		}
		verdict := "passed"
		if r.Failed {
			verdict = "**failed**"
		}
		fmt.Fprintf(&b, "| %s | %s | %v | %d | %d | %d | %s | %d | %d | %d | %s | %d | %s | %s |\n",
			r.Scenario, verdict, r.Duration.Round(time.Second), r.Written, r.Shipped, r.Lost, r.LostExact, r.Duplicated, r.Restarts, r.OOMKills,
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
	// missing names the first few runs of lines that never arrived, as
	// "run/stream first-last", for whoever reads a failure.
	missing []string
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
		gap := -1
		for n := 0; n <= max+1; n++ {
			if n == max+1 {
				if gap >= 0 && len(a.missing) < 8 {
					a.missing = append(a.missing, fmt.Sprintf("%s/%s %d-%d", rs[0], rs[1], gap, n-1))
				}
				break
			}
			a.written++
			c := seen[lineKey{rs[0], rs[1], n}]
			if c == 0 && gap < 0 {
				gap = n
			}
			if c != 0 && gap >= 0 {
				if len(a.missing) < 8 {
					a.missing = append(a.missing, fmt.Sprintf("%s/%s %d-%d", rs[0], rs[1], gap, n-1))
				}
				gap = -1
			}
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
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
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
	tally := b.proberResults(ctx, t, prober)
	for s, n := range tally.Statuses {
		creds["prober "+s] += n
	}
	restarts, ooms := b.nodekitRestarts(ctx, t)
	if restarts != 0 || ooms != 0 {
		t.Errorf("agents restarted %d times (%d OOM kills) during the partition", restarts, ooms)
	}
	// A pod metaproxy knows keeps its credentials: nothing but 200 after
	// its first answer.
	tally.check(t, "during the partition")
	if tally.Statuses["refused"] != 0 {
		t.Errorf("a pod metaproxy knew was refused during the partition: %v", tally.Statuses)
	}
	if a.lost != 0 || a.duplicated != 0 {
		t.Errorf("logger: %+v; want nothing lost or repeated", a)
	}
	recordFault(t, faultRow{
		Scenario: "API server partition", Duration: d, Written: a.written, Shipped: a.shipped, Lost: a.lost, LostExact: "n/a",
		Duplicated: a.duplicated, Restarts: restarts, OOMKills: ooms, Creds: creds, NodeRole: b.nodeRoleServed(tally.Roles),
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

// TestFaultNodeRestart: the kubelet, containerd, every container and so the
// agents die by SIGKILL while pods log as fast as they can, and the node
// comes back on the same state directories. logship resumes from its
// checkpoints: nothing lost, at most one batch repeated per stream.
// metaproxy fails closed until it is back: pods asking meanwhile get their
// role or a refusal, never the node's role.
func TestFaultNodeRestart(t *testing.T) {
	b := rnStart(t)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	b.shopNamespace(ctx)
	prober := b.pod(ctx, "shop", "prober", map[string]string{"iam.amazonaws.com/role": rnRole}, rnProberScript)
	var loggers []*corev1.Pod
	for i := range 3 {
		loggers = append(loggers, b.pod(ctx, "shop", fmt.Sprintf("burst%d", i), nil, rnSeqLoggerScript("boot", 200, "20000")))
	}
	time.Sleep(faultDur(20*time.Second, 8*time.Second)) // mid-burst
	down := time.Now()
	if err := b.node.Crash(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := b.node.Boot(ctx); err != nil {
		t.Fatalf("booting the node again: %v\n%s", err, rnLogTail(b.node, "kubelet"))
	}
	if err := b.kit.WaitRollout(ctx); err != nil {
		t.Fatal(err)
	}
	var recovery time.Duration
	waitFor(t, ctx, 3*time.Minute, "the nodekit pod Ready after the boot", func() (bool, string) {
		pod, err := b.kit.Pod(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				recovery = time.Since(down)
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", pod.Status.Conditions)
	})
	time.Sleep(faultDur(15*time.Second, 5*time.Second)) // the restarted loggers write on
	var total accounting
	for _, p := range loggers {
		b.waitRunning(ctx, t, p)
		b.stopWriting(ctx, t, p)
		b.waitShipped(ctx, t, p, "boot", 3*time.Minute)
		a := b.account(t, p, "boot")
		if len(a.lostByRun) != 0 || a.lost != 0 {
			t.Errorf("%s: %+v; want nothing lost across the crash", p.Name, a)
		}
		// One batch in flight at the kill may be sent again: PutLogEvents
		// takes at most 10,000 events.
		if a.duplicated > 10000 {
			t.Errorf("%s: %d lines repeated, more than one batch", p.Name, a.duplicated)
		}
		total.written += a.written
		total.shipped += a.shipped
		total.lost += a.lost
		total.duplicated += a.duplicated
	}
	tally := b.proberResults(ctx, t, prober)
	tally.check(t, "around the crash")
	restarts, ooms := b.nodekitRestarts(ctx, t)
	recordFault(t, faultRow{
		Scenario: "node restart (SIGKILL of kubelet, containerd, agents)", Duration: 3 * time.Second,
		Written: total.written, Shipped: total.shipped, Lost: total.lost, LostExact: "n/a", Duplicated: total.duplicated,
		Restarts: restarts, OOMKills: ooms, Creds: tally.Statuses, NodeRole: b.nodeRoleServed(tally.Roles),
		Recovery: fmt.Sprintf("nodekit Ready %v after the crash", recovery.Round(100*time.Millisecond)),
		Notes:    fmt.Sprintf("restarts: each agent once, by the crash; answers before a container's first credentials %v", tally.Early),
	})
}

// waitRunning waits for a pod's containers to run again after the node
// restarted them.
func (b *rnBed) waitRunning(ctx context.Context, t *testing.T, p *corev1.Pod) {
	t.Helper()
	waitFor(t, ctx, 2*time.Minute, p.Name+" running again", func() (bool, string) {
		cur, err := b.node.Kube.Client().CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, cs := range cur.Status.ContainerStatuses {
			if cs.State.Running == nil {
				return false, fmt.Sprintf("%+v", cs.State)
			}
		}
		return len(cur.Status.ContainerStatuses) > 0, ""
	})
}

// TestFaultPodChurn: pods of two Deployments with different roles are
// created and deleted for 5 minutes while the CNI plugin hands out a few
// dozen addresses, so new pods reuse deleted pods' IPs. No pod is ever
// handed another pod's role; metaproxy's and logship's memory is flat
// afterwards and logship keeps no deleted pod's log open.
func TestFaultPodChurn(t *testing.T) {
	b := rnStartWith(t, rnOptions{node: func(c *realnode.Config) {
		c.PodIPs = 32
		c.MinimumContainerTTL = 0 // the kubelet removes deleted pods' logs as usual
	}})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Annotations: map[string]string{"iam.amazonaws.com/allowed-roles": `["role-a","role-b"]`}}}
	if _, err := b.node.Kube.Client().CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Each pod asks for its credentials as the SDKs do, the role's name
	// first, then that role's credentials; it retries a refusal (as an
	// application with a retry does), prints each answer and, once served,
	// waits.
	script := `get() { printf 'GET /latest/meta-data/iam/security-credentials/%s HTTP/1.0\r\nHost: 169.254.169.254\r\n\r\n' "$1" | nc -w 3 169.254.169.254 80; }
n=0
while [ $n -lt 40 ]; do
  r=$(get "")
  status=$(echo "$r" | head -1 | cut -d' ' -f2)
  role=-
  key=-
  if [ "$status" = 200 ]; then
    role=$(echo "$r" | tr -d '\r' | sed '1,/^$/d' | tr -d '\n')
    c=$(get "$role")
    status=$(echo "$c" | head -1 | cut -d' ' -f2)
    key=$(echo "$c" | sed -n 's/.*"AccessKeyId" *: *"\([^"]*\)".*/\1/p')
  fi
  echo "churn $(hostname) ${status:-refused} ${role:--} ${key:--}"
  [ "$status" = 200 ] && break
  n=$((n+1)); usleep 500000
done
sleep 3600`
	for _, role := range []string{"role-a", "role-b"} {
		b.deployment(ctx, "shop", role, 10, map[string]string{"iam.amazonaws.com/role": role}, script)
	}
	time.Sleep(10 * time.Second)
	before := b.agentUsage(ctx, t)

	d := faultDur(5*time.Minute, 45*time.Second)
	end := time.Now().Add(d)
	restarts := 0
	for time.Now().Before(end) {
		for _, role := range []string{"role-a", "role-b"} {
			if _, err := b.node.Kubectl(ctx, "rollout", "restart", "-n", "shop", "deployment/"+role); err != nil {
				t.Fatal(err)
			}
			restarts++
			time.Sleep(5 * time.Second)
		}
	}
	for _, role := range []string{"role-a", "role-b"} {
		if _, err := b.node.Kubectl(ctx, "rollout", "status", "-n", "shop", "deployment/"+role, "--timeout=5m"); err != nil {
			t.Fatal(err)
		}
	}
	// The kubelet's garbage collection (every minute) removes the deleted
	// pods' logs; logship lets go of them once read. Memory is measured
	// once logship's two minutes of keeping a deleted pod's metadata for
	// files discovered late (cmd/logship) have passed for the last pods.
	churned := time.Now()
	time.Sleep(2*time.Minute + 15*time.Second)
	var open []string
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(5 * time.Second) {
		if open = b.logshipDeletedFiles(ctx, t); len(open) == 0 || time.Now().After(deadline) {
			break
		}
	}

	// Every pod's answer, as logship shipped it: its own role, never another's.
	creds := map[string]int{}
	pods := map[string]bool{}
	wrong := 0
	for _, stream := range b.node.AWS.LogStreams(rnGroup) {
		for _, e := range b.node.AWS.Events(rnGroup, stream) {
			var r struct {
				Log        string
				Kubernetes struct{ Labels map[string]string }
			}
			if json.Unmarshal([]byte(e.Message), &r) != nil {
				continue
			}
			f := strings.Fields(r.Log)
			if len(f) != 5 || f[0] != "churn" {
				continue
			}
			pod, status, role, key, want := f[1], f[2], f[3], f[4], r.Kubernetes.Labels["app"]
			creds[status]++
			if status == "200" {
				pods[pod] = true
			}
			if role != "-" && role != want {
				wrong++
				t.Errorf("pod %s (role %s) was told its role is %s", pod, want, role)
			}
			if key != "-" {
				if arn, _, _ := b.node.AWS.RoleForAccessKey(key); !strings.HasSuffix(arn, "/"+want) {
					wrong++
					t.Errorf("pod %s (role %s) was handed credentials of %s", pod, want, arn)
				}
			}
		}
	}
	// Pods live seconds here, and a new pod is refused until the kubelet's
	// report of its IP reaches metaproxy, which takes seconds on a node this
	// busy: many never get as far as their credentials (counted in the
	// report); those that do must get theirs.
	if len(pods) < restarts {
		t.Errorf("only %d pods were served their credentials over %d rollouts", len(pods), restarts)
	}
	after := b.agentUsage(ctx, t)
	measured := time.Since(churned).Round(time.Second)
	var memory []string
	for _, c := range []string{"metaproxy", "logship"} {
		memory = append(memory, fmt.Sprintf("%s's anonymous memory %.1f → %.1f MiB", c, mib(before[c].Anon), mib(after[c].Anon)))
		growth := after[c].WorkingSet - before[c].WorkingSet
		t.Logf("%s working set: %.1f MiB before the churn, %.1f MiB after (anonymous %.1f → %.1f MiB, active page cache %.1f → %.1f MiB, the rest kernel memory)",
			c, mib(before[c].WorkingSet), mib(after[c].WorkingSet), mib(before[c].Anon), mib(after[c].Anon), mib(before[c].ActiveFile), mib(after[c].ActiveFile))
		if growth > 4<<20 {
			t.Errorf("%s grew by %.1f MiB over the churn: a per-pod leak", c, mib(growth))
		}
	}
	t.Logf("memory measured %v after the last rollout", measured)
	if len(open) > 0 {
		t.Errorf("logship keeps %d deleted pods' log files open: %v", len(open), open)
	}
	r, ooms := b.nodekitRestarts(ctx, t)
	recordFault(t, faultRow{
		Scenario: "pod churn with IP reuse", Duration: d, LostExact: "n/a", Restarts: r, OOMKills: ooms, Creds: creds,
		Recovery: "n/a", Notes: fmt.Sprintf("%d pods served through %d rollouts on 32 addresses; %d answers naming another pod's role; %s, %v after the last rollout",
			len(pods), restarts, wrong, strings.Join(memory, ", "), measured),
	})
}

// agentUsage reads each nodekit container's cgroup.
func (b *rnBed) agentUsage(ctx context.Context, t *testing.T) map[string]realnode.Usage {
	t.Helper()
	pod, err := b.kit.Pod(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]realnode.Usage{}
	for _, cs := range pod.Status.ContainerStatuses {
		u, err := realnode.PodUsage(pod.UID, strings.TrimPrefix(cs.ContainerID, "containerd://"))
		if err != nil {
			t.Fatal(err)
		}
		out[cs.Name] = u
	}
	return out
}

// logshipDeletedFiles lists the files logship's processes hold open that
// are deleted, or belong to no pod on the node any more.
func (b *rnBed) logshipDeletedFiles(ctx context.Context, t *testing.T) []string {
	t.Helper()
	pod, err := b.kit.Pod(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var id string
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == "logship" {
			id = strings.TrimPrefix(cs.ContainerID, "containerd://")
		}
	}
	pids, err := realnode.ContainerPids(pod.UID, id)
	if err != nil {
		t.Fatal(err)
	}
	var open []string
	for _, pid := range pids {
		fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
		for _, fd := range fds {
			target, err := os.Readlink(fd)
			if err != nil || !strings.HasPrefix(target, "/var/log/pods/") {
				continue
			}
			if strings.HasSuffix(target, " (deleted)") {
				open = append(open, target)
				continue
			}
			if _, err := os.Stat(target); err != nil {
				open = append(open, target)
			}
		}
	}
	return open
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// TestFaultSTSOutage: STS stops answering once the credentials metaproxy
// holds are past their refresh point. The cached credentials are served
// until they come within their 15-minute safety margin of expiry, then pods
// get errors the SDKs retry (503), never the node's role; the moment STS
// is back, pods get fresh credentials.
//
// Time is short-cut, not waited out: the emulator's clock runs behind the
// node's, so the credentials it issues expire sooner by the node's clock
// (1h-lived, with window+15m left when issued).
func TestFaultSTSOutage(t *testing.T) {
	window := faultDur(2*time.Minute, 40*time.Second)
	lag := time.Hour - 15*time.Minute - window
	b := rnStartWith(t, rnOptions{node: func(c *realnode.Config) {
		c.AWS.Now = func() time.Time { return time.Now().Add(-lag) }
	}})
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	b.shopNamespace(ctx)
	prober := b.pod(ctx, "shop", "prober", map[string]string{"iam.amazonaws.com/role": rnRole}, rnProberScript)
	waitFor(t, ctx, time.Minute, "the prober's first credentials", func() (bool, string) {
		tally := b.proberResults(ctx, t, prober)
		return tally.Statuses["200"] > 0, fmt.Sprint(tally.Statuses)
	})
	// STS down for good: every AssumeRole answers 503.
	down := time.Now()
	b.node.AWS.SetFault("AssumeRole", awsemu.Fault{ServerErrorEvery: 1})
	waitFor(t, ctx, window+2*time.Minute, "the cached credentials to run out (503s)", func() (bool, string) {
		tally := b.proberResults(ctx, t, prober)
		return tally.Statuses["503"] >= 20, fmt.Sprint(tally.Statuses)
	})
	servedFor := time.Since(down)
	beforeRecovery := b.proberResults(ctx, t, prober)
	b.node.AWS.ClearFaults()
	back := time.Now()
	waitFor(t, ctx, time.Minute, "credentials from the recovered STS", func() (bool, string) {
		tally := b.proberResults(ctx, t, prober)
		return tally.Statuses["200"] > beforeRecovery.Statuses["200"], fmt.Sprint(tally.Statuses)
	})
	recovery := time.Since(back)
	tally := b.proberResults(ctx, t, prober)
	for s, n := range tally.Statuses {
		if s != "200" && s != "503" && !(s == "404" && tally.Early["404"] == n) {
			t.Errorf("the prober got %d answers %s; want its credentials, or 503 while none could be had", n, s)
		}
	}
	if len(tally.Roles) != 1 {
		t.Errorf("the prober was handed keys of %v", tally.Roles)
	}
	// The cached credentials carried the pods through most of the window
	// they had before their safety margin.
	if servedFor < window/2 {
		t.Errorf("cached credentials were served only %v into the outage; they had %v before their safety margin", servedFor, window)
	}
	restarts, ooms := b.nodekitRestarts(ctx, t)
	recordFault(t, faultRow{
		Scenario: "STS unavailable past the refresh point", Duration: servedFor + recovery, LostExact: "n/a",
		Restarts: restarts, OOMKills: ooms, Creds: tally.Statuses, NodeRole: b.nodeRoleServed(tally.Roles),
		Recovery: fmt.Sprintf("fresh credentials %v after STS returned", recovery.Round(100*time.Millisecond)),
		Notes:    fmt.Sprintf("cached credentials served %v into the outage (%v left before their margin)", servedFor.Round(time.Second), window),
	})
}
