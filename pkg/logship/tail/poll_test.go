package tail

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// caughtUp returns a Follower that has read the whole of its file.
func caughtUp(t *testing.T, content string) (*Follower, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	fl, err := Open(path, nil, testConfig(), discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fl.Close() })
	want := strings.Count(content, "\n")
	readLines(t, testCtx(t), fl, func(l []line) bool { return len(l) == want })
	// One more Next gives the lines back and waits at the end.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := fl.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("next at the end: %v", err)
	}
	return fl, path
}

// A node has many caught-up files, each polled several times a second:
// a poll must not allocate (but for the path's stat), or an idle logship
// keeps its garbage collector, and its memory, busy.
func TestIdlePollAllocatesAlmostNothing(t *testing.T) {
	fl, _ := caughtUp(t, "a\nb\nc\n")
	poll := func() {
		if err := fl.fstat(); err != nil {
			t.Fatalf("fstat: %v", err)
		}
		if fl.buf != nil || fl.st.Size > fl.off {
			t.Fatalf("a caught-up file would be read: buf %v, size %d, offset %d", fl.buf != nil, fl.st.Size, fl.off)
		}
		if _, action, err := fl.atEOF(); err != nil || action != waitMore {
			t.Fatalf("atEOF: %v %v", action, err)
		}
	}
	// One allocation: the path's conversion for stat(2).
	if allocs := testing.AllocsPerRun(100, poll); allocs > 1 {
		t.Fatalf("an idle poll allocates %.1f times", allocs)
	}
}

// Polls skip re-reading the head of an unchanged file; a truncation that
// regrows the file past the offset must still be seen.
func TestTruncationSeenAfterIdlePolls(t *testing.T) {
	fl, path := caughtUp(t, "aaa\nbbb\n")
	for range 3 {
		if _, action, err := fl.atEOF(); err != nil || action != waitMore {
			t.Fatalf("atEOF: %v %v", action, err)
		}
	}
	if err := os.WriteFile(path, []byte("a new file, longer than the old one\n"), 0o600); err != nil { // same inode
		t.Fatal(err)
	}
	got := readLines(t, testCtx(t), fl, func(l []line) bool { return len(l) >= 1 })
	if got[0].text != "a new file, longer than the old one" {
		t.Fatalf("after truncation read %+v", got)
	}
}

func TestQuietFilePolledLessOften(t *testing.T) {
	fl := &Follower{cfg: Config{PollInterval: 250 * time.Millisecond}}
	for _, tt := range []struct {
		quiet int
		want  time.Duration
	}{{0, 250 * time.Millisecond}, {quietPolls - 1, 250 * time.Millisecond}, {quietPolls, 500 * time.Millisecond},
		{2 * quietPolls, time.Second}, {100 * quietPolls, time.Second}} {
		fl.quiet = tt.quiet
		if got := fl.pollWait(); got != tt.want {
			t.Errorf("after %d empty polls: wait %v, want %v", tt.quiet, got, tt.want)
		}
	}
}

// New lines reset the wait: a file that logs again is polled at the
// full rate.
func TestNewLinesResetQuiet(t *testing.T) {
	fl, path := caughtUp(t, "a\n")
	fl.quiet = 3 * quietPolls
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("b\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	c, err := fl.Next(testCtx(t))
	if err != nil || string(c.Data) != "b\n" {
		t.Fatalf("next: %q %v", c.Data, err)
	}
	if fl.quiet != 0 {
		t.Fatalf("quiet %d after new lines, want 0", fl.quiet)
	}
}

// A watched Follower polls rarely, yet reads a new line at once: the
// Notifier wakes it. Its poll interval here is an hour, so only a wake
// can make it see the line before the test's deadline.
func TestNotifierWakesFollower(t *testing.T) {
	fl, path := caughtUp(t, "a\n")
	fl.cfg.PollInterval = time.Hour
	n, err := NewNotifier(discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() { cancel(); <-done }()
	detach := n.Attach(fl)
	defer detach()
	// What sleep does once the file has been quiet for quietPolls polls,
	// done here so that the write below surely comes after the watch.
	n.watch(fl)
	if !fl.watched.Load() {
		t.Fatal("not marked watched")
	}
	// Waiting out a poll interval of an hour: only a wake ends it (a wake
	// that comes first is kept for it).
	woken := make(chan error, 1)
	go func() { woken <- sleepLocked(testCtx(t), fl) }()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("b\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := <-woken; err != nil {
		t.Fatalf("the write did not wake the Follower: %v", err)
	}
	c, err := fl.Next(testCtx(t))
	if err != nil || string(c.Data) != "b\n" {
		t.Fatalf("next: %q %v", c.Data, err)
	}
	// A file that gives lines is read at the full rate, unwatched.
	n.mu.Lock()
	dirs := len(n.dirs)
	n.mu.Unlock()
	if fl.watched.Load() || dirs != 0 {
		t.Fatalf("still watched after new lines (watched %v, %d directories)", fl.watched.Load(), dirs)
	}
}

// A quiet attached Follower starts being watched by itself.
func TestQuietFollowerGetsWatched(t *testing.T) {
	fl, _ := caughtUp(t, "a\n")
	n, err := NewNotifier(discard())
	if err != nil {
		t.Fatal(err)
	}
	defer n.w.Close()
	detach := n.Attach(fl)
	fl.quiet = quietPolls
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // sleep returns at once; watching comes before the wait
	if err := sleepLocked(ctx, fl); !errors.Is(err, context.Canceled) {
		t.Fatalf("sleep: %v", err)
	}
	if !fl.watched.Load() {
		t.Fatal("a quiet file is not watched")
	}
	detach()
	if fl.watched.Load() || len(n.dirs) != 0 {
		t.Fatal("still watched after detach")
	}
}

func TestWatchedFilePolledLessOften(t *testing.T) {
	fl := &Follower{cfg: Config{PollInterval: 250 * time.Millisecond}}
	fl.quiet = 100 * quietPolls
	if got := fl.pollWait(); got != time.Second {
		t.Fatalf("unwatched: %v, want 1s", got)
	}
	fl.watched.Store(true)
	if got := fl.pollWait(); got != 8*time.Second {
		t.Fatalf("watched: %v, want 8s", got)
	}
}

// sleepLocked is sleep as next calls it, with the Follower's lock held.
func sleepLocked(ctx context.Context, fl *Follower) error {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.sleep(ctx)
}
