package logship

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodekit/nodekit/pkg/logship/batch"
	"github.com/nodekit/nodekit/test/awsemu"
	"github.com/nodekit/nodekit/test/podlogs"
)

// counter returns the sum of the series of name whose labels include
// every pair of want.
func counter(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

// seqWriter writes "<pod> <i>" lines to a container log, every fifth one
// split by the runtime into a P part and its F end (one log line, two
// file lines).
type seqWriter struct {
	c    *podlogs.Container
	pod  string
	next int
}

func (w *seqWriter) write(t *testing.T, n int) {
	t.Helper()
	var b []byte
	now := time.Now()
	for range n {
		msg := fmt.Sprintf("%s %d %s", w.pod, w.next, strings.Repeat("x", 40))
		if w.next%5 == 4 {
			b = w.c.AppendLine(b, now, "stdout", false, msg[:10])
			msg = msg[10:]
		}
		b = w.c.AppendLine(b, now, "stdout", true, msg)
		w.next++
	}
	appendLog(t, w.c, string(b))
}

// account counts w's lines that reached CloudWatch: distinct ones, and
// repeats. A line shipped in two parts (its P part flushed alone when the
// rest was let go) is neither.
func (w *seqWriter) account(h *harness) (distinct, repeated int) {
	seen := map[int]int{}
	for _, e := range h.emu.Events(group, w.c.Stream) {
		var r shipped
		if err := json.Unmarshal([]byte(e.Message), &r); err != nil {
			h.t.Fatal(err)
		}
		f := strings.Fields(r.Log)
		if len(f) != 3 || f[0] != w.pod {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			h.t.Fatalf("garbled line %q", r.Log)
		}
		seen[n]++
	}
	for _, c := range seen {
		distinct++
		repeated += c - 1
	}
	return distinct, repeated
}

// TestLossBeyondTheDeletedBoundIsExact: CloudWatch Logs hangs while two
// pods write and the kubelet rotates, compresses and deletes their files
// behind logship. Every file is held from the moment it appears; within
// --max-deleted-bytes nothing is lost, beyond it the oldest deleted files
// are let go, and logship_lost_lines_total says exactly, per pod, how many
// lines never reached CloudWatch (written minus shipped).
func TestLossBeyondTheDeletedBoundIsExact(t *testing.T) {
	tests := []struct {
		name     string
		maxBytes int64
		wantLoss bool
	}{
		{"within_the_bound_nothing_is_lost", 64 << 20, false},
		{"beyond_the_bound_the_loss_is_counted", 200 << 10, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.cfg.MaxBuffer = 2 * batch.MaxBytes
			h.cfg.Tail.MaxDeletedBytes = tc.maxBytes
			h.emu.SetFault("PutLogEvents", awsemu.Fault{Blackhole: true})
			var ws []*seqWriter
			for i := range 2 {
				pod := fmt.Sprintf("storm-%d", i)
				h.meta.OnAdd(testPod("shop", pod, "uid-"+pod), false)
				ws = append(ws, &seqWriter{c: h.n.container("shop", pod, "uid-"+pod, "app", fmt.Sprintf("c%d", i)), pod: pod})
			}
			h.start()
			for range 6 {
				for _, w := range ws {
					w.write(t, 3000)
					if _, err := w.c.KubeletRotate(4); err != nil {
						t.Fatal(err)
					}
				}
				// The kubelet rotates a container at most once per
				// containerLogMonitorInterval (10 s by default); logship
				// looks at every path each --poll-interval (5 ms here).
				time.Sleep(200 * time.Millisecond)
			}
			for _, w := range ws {
				w.write(t, 100)
			}
			h.emu.SetFault("PutLogEvents", awsemu.Fault{})
			deadline := time.Now().Add(time.Minute)
			for _, w := range ws {
				for {
					shipped, repeated := w.account(h)
					lost := int(counter(t, h.reg, "logship_lost_lines_total", map[string]string{"pod": w.pod}))
					if shipped+lost >= w.next || time.Now().After(deadline) {
						if repeated != 0 {
							t.Errorf("%s: %d lines shipped twice", w.pod, repeated)
						}
						if shipped+lost != w.next {
							t.Errorf("%s: %d lines written, %d shipped, %d counted lost: the count is off by %d",
								w.pod, w.next, shipped, lost, w.next-shipped-lost)
						}
						if gotLoss := lost > 0; gotLoss != tc.wantLoss {
							t.Errorf("%s: %d lines lost with a bound of %d bytes; want a loss: %v", w.pod, lost, tc.maxBytes, tc.wantLoss)
						}
						t.Logf("%s: %d written, %d shipped, %d lost", w.pod, w.next, shipped, lost)
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
			if n := counter(t, h.reg, "logship_files_lost_total", map[string]string{"reason": "unopened"}); n != 0 {
				t.Errorf("%v files were deleted before logship opened them: it did not hold every rotation", n)
			}
			lostBytes := counter(t, h.reg, "logship_lost_bytes_total", nil)
			if (lostBytes > 0) != tc.wantLoss {
				t.Errorf("logship_lost_bytes_total %v", lostBytes)
			}
		})
	}
}
