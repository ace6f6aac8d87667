package logship

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodekit/nodekit/pkg/logship/checkpoint"
	"github.com/nodekit/nodekit/test/sandbox"
)

// TestFullCheckpointDiskPausesShipping: logship's state directory is a
// small tmpfs, and it fills up. logship ships at most the batch in flight
// beyond what its checkpoint holds, then stops, with a whole checkpoint,
// the failure in a metric, in /readyz and in its log; when space returns
// it resumes by itself and every line arrives once.
func TestFullCheckpointDiskPausesShipping(t *testing.T) {
	sandbox.RequireRoot(t)
	h := newHarness(t)
	if err := os.MkdirAll(h.n.state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", h.n.state, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=262144,mode=0700"); err != nil {
		t.Fatalf("mounting a tmpfs for the state directory: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(h.n.state, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting the state tmpfs: %v", err)
		}
	})
	h.meta.OnAdd(testPod("shop", "web-1", "uid-web"), false)
	c := h.n.container("shop", "web-1", "uid-web", "app", "a1")
	stream := c.Stream
	stop := h.start()
	n := 0
	write := func(k int) {
		var b strings.Builder
		for range k {
			b.WriteString(criLine("stdout", "F", fmt.Sprintf("line %05d", n)))
			n++
		}
		appendLog(t, c, b.String())
	}
	write(100)
	h.records(stream, 100)
	saved := func() int64 {
		st, err := checkpoint.Open(h.n.state, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		pos, _ := st.Get(stream + ".log")
		return pos.Offset
	}
	waitCond(t, "the first checkpoint", func() (bool, string) { return saved() > 0, "" })
	before := saved()

	fill := filepath.Join(h.n.state, "fill")
	f, err := os.Create(fill)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	// The first batch after the fill is accepted; its checkpoint cannot
	// be saved, and the stream waits.
	write(50)
	waitCond(t, "readiness to report the full disk", func() (bool, string) {
		ready, why := h.agent.Readiness()
		return !ready && strings.Contains(why, "saving checkpoints"), why
	})
	if v := counter(t, h.reg, "logship_checkpoint_write_failing", nil); v != 1 {
		t.Errorf("logship_checkpoint_write_failing = %v, want 1", v)
	}
	shipped := len(h.emu.Events(group, stream))
	// Lines written now wait in the log file; the store keeps trying.
	for range 5 {
		write(20)
		time.Sleep(20 * time.Millisecond)
	}
	waitCond(t, "three failed checkpoint writes", func() (bool, string) {
		v := counter(t, h.reg, "logship_checkpoint_write_failures_total", nil)
		return v >= 3, fmt.Sprint(v)
	})
	if now := len(h.emu.Events(group, stream)); now != shipped || shipped > 150 {
		t.Errorf("%d events shipped while the checkpoint could not be saved (%d when it first failed, 150 written before): shipping ran ahead of the checkpoint", now, shipped)
	}
	if got := saved(); got != before {
		t.Errorf("the checkpoint on the full disk says offset %d, want %d (the last saved)", got, before)
	}
	if _, err := os.Stat(filepath.Join(h.n.state, checkpoint.FileName+".corrupt")); err == nil {
		t.Error("the checkpoint on the full disk was corrupt")
	}

	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	recs := h.records(stream, n)
	for i, r := range recs {
		if want := fmt.Sprintf("line %05d", i); r.Log != want {
			t.Fatalf("event %d is %q, want %q: a loss or a repeat", i, r.Log, want)
		}
	}
	waitCond(t, "readiness back", func() (bool, string) {
		ready, why := h.agent.Readiness()
		return ready, why
	})
	if v := counter(t, h.reg, "logship_checkpoint_write_failing", nil); v != 0 {
		t.Errorf("logship_checkpoint_write_failing = %v after space returned", v)
	}
	stop()
	if got := len(h.emu.Events(group, stream)); got != n {
		t.Errorf("%d events shipped for %d lines", got, n)
	}
}

// waitCond polls cond until it holds, for up to a minute.
func waitCond(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %s", what, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
