package tail

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestCaughtUpFileHoldsNoBuffer: a file read to its end gives its buffer
// back, keeps only a small one for a partial line, and borrows a large one
// when it is busy again.
func TestCaughtUpFileHoldsNoBuffer(t *testing.T) {
	cfg := DefaultConfig()
	path := filepath.Join(t.TempDir(), "0.log")
	line := strings.Repeat("x", 99) + "\n"
	write := func(s string) {
		t.Helper()
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	write(line)
	fl, err := Open(path, nil, cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	if fl.buf != nil {
		t.Fatalf("Open borrowed a %d-byte buffer before any read", len(fl.buf))
	}
	// next returns the next chunk, or nil once the file is caught up.
	next := func() []byte {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // at the end of the file, return at once
		c, err := fl.Next(ctx)
		if err != nil {
			return nil
		}
		return c.Data
	}
	steps := []struct {
		name   string
		write  string
		chunks int // chunks to read before catching up (-1: any number)
		maxBuf int // largest buffer the caught-up file may hold
	}{
		{"one_line", "", 1, 0},
		{"burst", strings.Repeat(line, 10_000), -1, 0},
		{"partial_line_pending", line + "partial", 1, idleBuffer},
		{"partial_completed", " end\n", 1, 0},
	}
	for _, st := range steps {
		write(st.write)
		n, sawLarge := 0, false
		for next() != nil {
			n++
			sawLarge = sawLarge || len(fl.buf) == cfg.BufferSize
		}
		if st.chunks >= 0 && n != st.chunks {
			t.Fatalf("%s: %d chunks, want %d", st.name, n, st.chunks)
		}
		if st.chunks < 0 && !sawLarge {
			t.Fatalf("%s: a busy file never read with a %d-byte buffer", st.name, cfg.BufferSize)
		}
		if len(fl.buf) > st.maxBuf {
			t.Fatalf("%s: caught up, the file holds a %d-byte buffer (at most %d)", st.name, len(fl.buf), st.maxBuf)
		}
	}
}

// TestSharedPoolKeepsChunksIntact: Followers sharing a pool never write
// into a chunk another one handed out and has not been asked past.
func TestSharedPoolKeepsChunksIntact(t *testing.T) {
	cfg := DefaultConfig()
	cfg.PollInterval = 1 // never waited on: the files are drained
	dir := t.TempDir()
	var fls []*Follower
	for _, c := range []string{"a", "b"} {
		path := filepath.Join(dir, c+".log")
		if err := os.WriteFile(path, []byte(strings.Repeat(strings.Repeat(c, 50)+"\n", 3)), 0o600); err != nil {
			t.Fatal(err)
		}
		fl, err := Open(path, nil, cfg, discard())
		if err != nil {
			t.Fatal(err)
		}
		defer fl.Close()
		fl.Drain()
		fls = append(fls, fl)
	}
	ctx := testCtx(t)
	a, err := fls[0].Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(a.Data)
	// b reads, finishes and gives its buffer back, twice over.
	for range 3 {
		if _, err := fls[1].Next(ctx); err != nil {
			break
		}
	}
	if !bytes.Equal(a.Data, want) {
		t.Fatalf("a's chunk changed under it: %q", a.Data)
	}
}

// BenchmarkIdleFollowers reports the heap a caught-up Follower holds
// (held-B/file): 50 files of 100 lines, like the suite's idle node, each
// read to its end and then left waiting for more.
func BenchmarkIdleFollowers(b *testing.B) {
	const files = 50
	dir := b.TempDir()
	line := "2026-11-21T10:00:00.123456789Z stdout F " + strings.Repeat("x", 70) + "\n"
	var paths []string
	for i := range files {
		p := filepath.Join(dir, strconv.Itoa(i)+".log")
		if err := os.WriteFile(p, []byte(strings.Repeat(line, 100)), 0o600); err != nil {
			b.Fatal(err)
		}
		paths = append(paths, p)
	}
	cfg := DefaultConfig()
	done, cancel := context.WithCancel(context.Background())
	cancel() // at a file's end, Next returns at once
	var held float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		fls := make([]*Follower, 0, files)
		for _, p := range paths {
			fl, err := Open(p, nil, cfg, discard())
			if err != nil {
				b.Fatal(err)
			}
			for {
				if _, err := fl.Next(done); err != nil {
					break
				}
			}
			fls = append(fls, fl)
		}
		runtime.GC()
		runtime.GC() // and the pool's victim cache
		runtime.ReadMemStats(&after)
		held += float64(after.HeapAlloc) - float64(before.HeapAlloc)
		for _, fl := range fls {
			fl.Close()
		}
	}
	b.ReportMetric(held/float64(b.N)/files, "held-B/file")
}
