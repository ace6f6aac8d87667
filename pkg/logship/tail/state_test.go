package tail

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestAfterEnd(t *testing.T) {
	tests := []struct {
		name   string
		from   fileState
		facts  endFacts
		to     fileState
		action eofAction
	}{
		{"live_file_waits", live, endFacts{}, live, waitMore},
		{"live_file_cut_reads_its_copy", live, endFacts{truncated: true, renamedAway: true, draining: true}, copied, readMore},
		{"live_file_renamed_away_is_read_once_more", live, endFacts{renamedAway: true, draining: true}, renamed, readMore},
		{"live_file_drained_finishes", live, endFacts{draining: true}, finished, handOut},
		{"older_file_done", older, endFacts{}, between, handOut},
		{"renamed_file_done", renamed, endFacts{}, between, handOut},
		{"copy_done_then_path_anew", copied, endFacts{}, between, handOut},
		// Only the live file looks at the facts: the others no longer grow.
		{"older_file_ignores_facts", older, endFacts{truncated: true, renamedAway: true, draining: true}, between, handOut},
		// The runtime may still write to a file just renamed away.
		{"renamed_file_settling_waits", renamed, endFacts{settling: true}, renamed, waitMore},
		{"older_file_settling_waits", older, endFacts{settling: true}, older, waitMore},
		{"finished_stays", finished, endFacts{draining: true}, finished, waitMore},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			to, action := afterEnd(tc.from, tc.facts)
			if to != tc.to || action != tc.action {
				t.Fatalf("afterEnd(%s, %+v) = %s, %d; want %s, %d", tc.from, tc.facts, to, action, tc.to, tc.action)
			}
		})
	}
}

// TestTryNext: TryNext hands out what the file has and says when it has
// nothing, without waiting; after Drain it ends the stream.
func TestTryNext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(path, []byte("a\nb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fl, err := Open(path, nil, testConfig(), discard())
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	c, ok, err := fl.TryNext()
	if err != nil || !ok || string(c.Data) != "a\nb\n" || fl.state != live {
		t.Fatalf("TryNext = %q, %v, %v in state %s; want both lines in state live", c.Data, ok, err, fl.state)
	}
	if c, ok, err := fl.TryNext(); err != nil || ok {
		t.Fatalf("TryNext at the end = %q, %v, %v; want nothing", c.Data, ok, err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("c\npartial"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if c, ok, err := fl.TryNext(); err != nil || !ok || string(c.Data) != "c\n" {
		t.Fatalf("TryNext after a write = %q, %v, %v; want the complete line", c.Data, ok, err)
	}
	fl.Drain()
	// A drained file is done once it has gone RotateWait unwritten.
	time.Sleep(2 * testConfig().RotateWait)
	if c, ok, err := fl.TryNext(); err != nil || !ok || !c.Final || c.Continued || string(c.Data) != "partial" {
		t.Fatalf("TryNext when drained = %q (final %v, continued %v), %v, %v; want the partial line, final, not continued", c.Data, c.Final, c.Continued, ok, err)
	}
	if _, _, err := fl.TryNext(); !errors.Is(err, io.EOF) || fl.state != finished {
		t.Fatalf("TryNext after the end = %v in state %s; want io.EOF, finished", err, fl.state)
	}
}

// A line written after the Follower last reached the end, then the
// container gone: the drain reads it before finishing. (On a real node the
// last line of a pod deleted while logship was down went missing: the file
// had grown since the end was last seen, and the drain finished without
// reading it.)
func TestDrainReadsWhatCameAfterTheLastEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(path, []byte("a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	fl, err := Open(path, nil, cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	if c, ok, err := fl.TryNext(); err != nil || !ok || string(c.Data) != "a\n" {
		t.Fatalf("TryNext = %q, %v, %v", c.Data, ok, err)
	}
	if _, ok, err := fl.TryNext(); err != nil || ok {
		t.Fatalf("TryNext at the end = %v, %v; want nothing", ok, err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("done\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	fl.Drain()
	var got string
	// The stream ends once the file has gone RotateWait unwritten: the
	// runtime may still be flushing the container's pipe.
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, ok, err := fl.TryNext()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			if time.Now().After(deadline) {
				t.Fatal("a drained stream did not end")
			}
			time.Sleep(time.Millisecond)
			continue
		}
		got += string(c.Data)
	}
	if since := time.Since(st.ModTime()); since < cfg.RotateWait {
		t.Errorf("the drained stream ended %v after its last write, before RotateWait (%v)", since, cfg.RotateWait)
	}
	if got != "done\n" {
		t.Fatalf("the drain handed out %q, want the last line", got)
	}
}

// TestRotatedFileEndContinues: the final chunk of a file rotated away says
// the next file continues it, so that a line containerd split across the
// two is joined.
func TestRotatedFileEndContinues(t *testing.T) {
	k := newKubelet(t, 5)
	k.write(3)
	fl, err := Open(k.path, nil, testConfig(), discard())
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	var r reading
	readAll(t, fl, &r, k.seq)
	if _, err := k.w.WriteString("P head-of-a-split-line"); err != nil {
		t.Fatal(err)
	}
	k.rotate()
	k.write(1)
	for {
		c, err := fl.Next(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if c.Final {
			if !c.Continued || string(c.Data) != "P head-of-a-split-line" {
				t.Fatalf("the rotated file's final chunk: %q, continued %v; want the partial line, continued", c.Data, c.Continued)
			}
			return
		}
	}
}
