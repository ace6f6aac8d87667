package logship

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodekit/nodekit/test/awsemu"
	"github.com/nodekit/nodekit/test/podlogs"
)

// gauge returns the value of the series name{namespace=ns} in reg, and
// whether there is one.
func gauge(t *testing.T, reg *prometheus.Registry, name, ns string) (float64, bool) {
	t.Helper()
	return gaugeWith(t, reg, name, "namespace", ns)
}

// TestLagCountsAcrossRotation: right after a rotation the file being read
// is not the file whose offset CloudWatch accepted. While CloudWatch
// accepts nothing the lag must grow, whatever the two offsets are (the new
// file's offset is below the old one's).
func TestLagCountsAcrossRotation(t *testing.T) {
	h := newHarness(t)
	h.meta.OnAdd(testPod("shop", "web-1", "uid-web"), false)
	log := h.n.container("shop", "web-1", "uid-web", "app", "aaa111")
	stream := log.Stream
	h.start()
	// Lines dated a minute ago: the lag is the age of the last accepted
	// line, so it is at least that once CloudWatch stops accepting.
	old := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	var b strings.Builder
	for i := range 200 {
		fmt.Fprintf(&b, "%s stdout F line %04d of the first file, padded to be longer than the next\n", old, i)
	}
	appendLog(t, log, b.String())
	h.records(stream, 200)
	if v, ok := gauge(t, h.reg, "logship_lag_seconds", "shop"); !ok || v != 0 {
		t.Fatalf("caught up: lag %v (present %v), want 0", v, ok)
	}

	h.emu.SetFault("PutLogEvents", awsemu.Fault{Blackhole: true})
	t.Cleanup(func() { h.emu.SetFault("PutLogEvents", awsemu.Fault{}) })
	rotate(t, log)
	appendLog(t, log, criLine("stdout", "F", "first line of the new file"))
	// The reader gets to the new line, and the last batch's
	// acknowledgement lands, in their own time: wait for the lag to show
	// (it never did when offsets of the two files were compared).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		v, _ := gauge(t, h.reg, "logship_lag_seconds", "shop")
		if v >= 30 {
			break
		}
		select {
		case <-ctx.Done():
			n, _ := gauge(t, h.reg, "logship_lines_read_total", "shop")
			t.Fatalf("lag %v s with %v lines read while the new file's line is unshipped and the last accepted line is a minute old, want >= 30", v, n)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestDeniedShowsInMetricsAndReadiness: a permission only an operator can
// grant shows as its error class in the metrics and keeps logship unready
// with the fix, while logship keeps retrying; once granted, every line
// arrives and logship is ready again.
func TestDeniedShowsInMetricsAndReadiness(t *testing.T) {
	for _, tc := range []struct {
		op, fix string
	}{
		{"PutLogEvents", "AWS refused logs:PutLogEvents on log group " + group},
		{"CreateLogGroup", "log group " + group + " does not exist and logship may not create it"},
	} {
		t.Run(tc.op, func(t *testing.T) {
			h := newHarness(t)
			h.emu.SetFault(tc.op, awsemu.Fault{Deny: true})
			h.meta.OnAdd(testPod("shop", "web-1", "uid-web"), false)
			log := h.n.container("shop", "web-1", "uid-web", "app", "aaa111")
			h.start()
			appendLog(t, log, criLine("stdout", "F", "held up"))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := h.emu.WaitFor(ctx, func() bool { return h.emu.Count(tc.op) >= 3 }); err != nil {
				t.Fatalf("%s attempts: %d: %v", tc.op, h.emu.Count(tc.op), err)
			}
			if ready, why := h.agent.Readiness(); ready || !strings.Contains(why, tc.fix) {
				t.Errorf("Readiness() = %v, %q; want not ready with %q", ready, why, tc.fix)
			}
			if v, _ := gaugeWith(t, h.reg, "logship_streams_stalled", "class", "access_denied"); v != 1 {
				t.Errorf("logship_streams_stalled{class=access_denied} = %v, want 1", v)
			}
			if tc.op == "PutLogEvents" {
				// Two answers at least were taken in when the third call came.
				if v, _ := gaugeWith(t, h.reg, "logship_put_retries_total", "reason", "access_denied"); v < 2 {
					t.Errorf("logship_put_retries_total{reason=access_denied} = %v, want >= 2", v)
				}
			}
			h.emu.SetFault(tc.op, awsemu.Fault{})
			if recs := h.records(log.Stream, 1); recs[0].Log != "held up" {
				t.Fatalf("shipped %q", recs[0].Log)
			}
			// The batch's answer is taken in after the emulator stored it.
			for ready, why := h.agent.Readiness(); !ready; ready, why = h.agent.Readiness() {
				select {
				case <-ctx.Done():
					t.Fatalf("not ready after delivery: %s", why)
				case <-time.After(5 * time.Millisecond):
				}
			}
		})
	}
}

// gaugeWith returns the value of the series name{label=value} in reg (of
// its only series when label is empty), and whether there is one.
func gaugeWith(t *testing.T, reg *prometheus.Registry, name, label, value string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == "" && len(mf.GetMetric()) == 1
			for _, l := range m.GetLabel() {
				match = match || l.GetName() == label && l.GetValue() == value
			}
			if !match {
				continue
			}
			if m.Gauge != nil {
				return m.Gauge.GetValue(), true
			}
			return m.Counter.GetValue(), true
		}
	}
	return 0, false
}

// TestQuietContainersHoldSmallChunks: a quiet container's few lines wait
// for their batch in a small buffer, not a full-size one (each held until
// the batch goes, full-size chunks of many quiet containers were most of
// the heap under pod churn); a burst that follows still ships every line.
func TestQuietContainersHoldSmallChunks(t *testing.T) {
	h := newHarness(t)
	h.cfg.BatchWait = time.Hour // the batches wait: what they hold shows
	const pods = 20
	var logs []*podlogs.Container
	for i := range pods {
		uid := fmt.Sprintf("uid-%d", i)
		h.meta.OnAdd(testPod("shop", fmt.Sprintf("web-%d", i), uid), false)
		logs = append(logs, h.n.container("shop", fmt.Sprintf("web-%d", i), uid, "app", fmt.Sprintf("c%d", i)))
	}
	h.start()
	for _, c := range logs {
		appendLog(t, c, criLine("stdout", "F", "started"))
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if n, _ := gauge(t, h.reg, "logship_lines_read_total", "shop"); n == pods {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the containers' lines were not read")
		}
	}
	if held := unlabeled(t, h.reg, "logship_buffered_bytes"); held > pods*(quietChunkBytes+4<<10) {
		t.Errorf("%d quiet containers' one line each hold %.0f bytes (small chunks: %d each)", pods, held, quietChunkBytes)
	}
	// A burst in one of them: its records overflow the small chunk,
	// which goes first; the full batches (1 MiB) ship them in order.
	var burst strings.Builder
	for i := range 12000 {
		burst.WriteString(criLine("stdout", "F", fmt.Sprintf("burst line %05d %s", i, strings.Repeat("x", 80))))
	}
	appendLog(t, logs[0], burst.String())
	recs := h.records(logs[0].Stream, 1+8000)
	for i, r := range recs[1:8001] {
		if want := fmt.Sprintf("burst line %05d", i); !strings.HasPrefix(r.Log, want) {
			t.Fatalf("record %d is %q, want %q…", i+1, r.Log, want)
		}
	}
}

// unlabeled returns the value of name's only series in reg.
func unlabeled(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	v, ok := gaugeWith(t, reg, name, "", "")
	if !ok {
		t.Fatalf("no series %s", name)
	}
	return v
}
