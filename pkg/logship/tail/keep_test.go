package tail

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// kubelet plays containerd and the kubelet's container log manager for one
// container's 0.log: lines are appended; rotate renames 0.log to
// 0.log.<n> and reopens 0.log, after compressing every plain rotated file
// (write .gz, delete the plain one) and deleting the oldest compressed
// ones beyond maxFiles, in the kubelet's order.
type kubelet struct {
	t        *testing.T
	path     string
	w        *os.File
	maxFiles int
	n        int // rotations
	seq      int // next line number
	written  int64
}

func newKubelet(t *testing.T, maxFiles int) *kubelet {
	k := &kubelet{t: t, path: filepath.Join(t.TempDir(), "0.log"), maxFiles: maxFiles}
	k.open()
	t.Cleanup(func() { k.w.Close() })
	return k
}

func (k *kubelet) open() {
	w, err := os.OpenFile(k.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		k.t.Fatal(err)
	}
	k.w = w
}

// write appends n lines "seq <i>", every third a runtime-split pair (a P
// part and its F end): one log line, two physical lines.
func (k *kubelet) write(n int) {
	var b strings.Builder
	for range n {
		if k.seq%3 == 2 {
			fmt.Fprintf(&b, "P seq %d part\n", k.seq)
		}
		fmt.Fprintf(&b, "F seq %d\n", k.seq)
		k.seq++
	}
	if _, err := k.w.WriteString(b.String()); err != nil {
		k.t.Fatal(err)
	}
	k.written += int64(b.Len())
}

func (k *kubelet) rotate() {
	t := k.t
	rotated, _ := filepath.Glob(k.path + ".*")
	slices.Sort(rotated)
	// removeExcessLogs: room for the rotation about to happen.
	for len(rotated) > k.maxFiles-2 {
		if err := os.Remove(rotated[0]); err != nil {
			t.Fatal(err)
		}
		rotated = rotated[1:]
	}
	for _, name := range rotated {
		if strings.HasSuffix(name, ".gz") {
			continue
		}
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(data)
		zw.Close()
		if err := os.WriteFile(name+".gz.tmp", gz.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(name+".gz.tmp", name+".gz"); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
	k.n++
	if err := os.Rename(k.path, fmt.Sprintf("%s.%06d", k.path, k.n)); err != nil {
		t.Fatal(err)
	}
	k.w.Close()
	k.open()
}

// countF counts log lines as the parser would: a "P" line is part of the
// next "F" line.
func countF(data []byte) int {
	n := 0
	for l := range bytes.Lines(data) {
		if !bytes.HasPrefix(l, []byte("P ")) {
			n++
		}
	}
	return n
}

// reading is what a reader got from a Follower.
type reading struct {
	seqs  []int
	bytes int64
}

// readAll reads fl until it has handed out line want-1 or was drained.
func readAll(t *testing.T, fl *Follower, r *reading, want int) {
	t.Helper()
	ctx := testCtx(t)
	for len(r.seqs) == 0 || r.seqs[len(r.seqs)-1] < want-1 {
		c, err := fl.Next(ctx)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("next after %d lines: %v", len(r.seqs), err)
		}
		r.add(t, c.Data)
	}
}

func (r *reading) add(t *testing.T, data []byte) {
	r.bytes += int64(len(data))
	for l := range bytes.Lines(data) {
		if !bytes.HasPrefix(l, []byte("F seq ")) {
			continue
		}
		n, err := strconv.Atoi(string(bytes.TrimSpace(l[len("F seq "):])))
		if err != nil {
			t.Fatalf("garbled line %q", l)
		}
		r.seqs = append(r.seqs, n)
	}
}

// losses collects what a Follower reports.
type losses struct {
	mu sync.Mutex
	l  []Loss
}

func (ls *losses) add(l Loss) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.l = append(ls.l, l)
}

func (ls *losses) total() (lines, bytes int64, files int) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, l := range ls.l {
		lines += l.Lines
		bytes += l.Bytes
	}
	return lines, bytes, len(ls.l)
}

// TestKeeperHoldsEveryRotation: the reader stops after its first chunk
// (its stream is paused) while the kubelet rotates, compresses and deletes
// six times; every file was held from the moment it appeared at the path,
// so the reader, resumed, gets every line once and in order. Without the
// Keeper's looks, the files compressed meanwhile are gone.
func TestKeeperHoldsEveryRotation(t *testing.T) {
	for _, keep := range []bool{true, false} {
		t.Run(fmt.Sprintf("keeper_%v", keep), func(t *testing.T) {
			k := newKubelet(t, 3)
			k.write(200)
			fl, keeper, ls, r := keptAfterFirstChunk(t, k)
			for range 6 {
				k.write(200)
				k.rotate()
				if keep {
					keeper.pass()
				}
			}
			k.write(200)
			readAll(t, fl, r, k.seq)
			if !keep {
				if len(r.seqs) >= k.seq {
					t.Fatalf("read all %d lines without a Keeper: the test does not make the kubelet delete unread files", k.seq)
				}
				return
			}
			checkEveryLineOnce(t, r.seqs, k.seq)
			if r.bytes != k.written {
				t.Fatalf("read %d lines (%d bytes) of %d (%d bytes)", len(r.seqs), r.bytes, k.seq, k.written)
			}
			if lines, _, files := ls.total(); files != 0 {
				t.Fatalf("%d losses (%d lines) reported with no bound reached", files, lines)
			}
			if keeper.DeletedBytes() <= 0 {
				t.Fatalf("deleted bytes held at the last look: %d, want some", keeper.DeletedBytes())
			}
		})
	}
}

// TestKeeperLetsGoExactly: deleted files beyond the bounds are let go,
// oldest first, and what was never read of them is reported exactly: the
// lines read and the lines reported lost make up every line written, and
// so do the bytes.
func TestKeeperLetsGoExactly(t *testing.T) {
	tests := []struct {
		name      string
		maxBytes  int64 // as a multiple of one rotation's size
		age       time.Duration
		wantFiles int
		reason    LossReason
	}{
		// Six rotations, three of them compressed and deleted after the
		// file being read: four deleted files held (the one being read
		// among them), three of them beyond a bound of one file.
		{"bytes_bound_oldest_first", 1, 0, 3, LostHeldBytes},
		{"no_bound_reached", 10, 0, 0, ""},
		{"held_too_long", 10, 2 * time.Minute, 4, LostHeldTime},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := newKubelet(t, 3)
			k.write(300)
			one := k.written // a rotation's size
			var ls losses
			cfg := testConfig()
			cfg.CountLines, cfg.OnLoss = countF, ls.add
			cfg.MaxDeletedBytes, cfg.MaxHold = tc.maxBytes*one+one/2, time.Minute
			fl, err := Open(k.path, nil, cfg, discard())
			if err != nil {
				t.Fatal(err)
			}
			defer fl.Close()
			keeper := NewKeeper(cfg, discard())
			now := time.Unix(1000, 0)
			keeper.now = func() time.Time { return now }
			defer keeper.Keep(fl)()
			var r reading
			// Part of the first file is read, and a partial line is in
			// the buffer (4 KiB reads end mid-line).
			c, err := fl.Next(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			r.add(t, c.Data)
			for range 5 {
				k.write(300)
				k.rotate()
				keeper.pass()
			}
			now = now.Add(tc.age)
			keeper.pass()
			k.write(300)
			fl.Drain()
			readAll(t, fl, &r, k.seq)
			lines, lostBytes, files := ls.total()
			if files != tc.wantFiles {
				t.Fatalf("%d files let go (%+v), want %d", files, ls.l, tc.wantFiles)
			}
			for _, l := range ls.l {
				if l.Reason != tc.reason || !l.Counted {
					t.Fatalf("loss %+v, want reason %s, counted", l, tc.reason)
				}
			}
			if int(lines)+len(r.seqs) != k.seq {
				t.Fatalf("read %d lines and %d reported lost; %d were written", len(r.seqs), lines, k.seq)
			}
			if lostBytes+r.bytes != k.written {
				t.Fatalf("read %d bytes and %d reported lost; %d were written", r.bytes, lostBytes, k.written)
			}
			if !slices.IsSorted(r.seqs) || len(slices.Compact(slices.Clone(r.seqs))) != len(r.seqs) {
				t.Fatalf("lines out of order or repeated: %v", r.seqs)
			}
			// The oldest files went: what was read is the newest lines.
			if tc.wantFiles > 0 && r.seqs[len(r.seqs)-1] != k.seq-1 {
				t.Fatalf("the newest line %d was not read", k.seq-1)
			}
		})
	}
}

// An idle Follower (at the end of its live file) is left to itself: the
// Keeper costs a quiet node nothing per file.
func TestKeeperSkipsIdleFollowers(t *testing.T) {
	fl, path := caughtUp(t, "a\n")
	fl.cfg.PollInterval = time.Hour // it sleeps until the test ends
	keeper := NewKeeper(testConfig(), discard())
	defer keeper.Keep(fl)()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := fl.Next(ctx); done <- err }()
	defer func() { cancel(); <-done }()
	waitUntil(t, fl.idle.Load)
	// A rotation the idle Follower sees for itself at its next poll.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keeper.pass()
	fl.mu.Lock()
	held := len(fl.queue)
	fl.mu.Unlock()
	if held != 0 {
		t.Fatalf("the Keeper held %d files of an idle Follower", held)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
		time.Sleep(time.Millisecond)
	}
}

// A Keeper's look at a Follower closed after the look began (its target
// gone) opens nothing: it would never be closed.
func TestKeeperLeavesClosedFollowersAlone(t *testing.T) {
	k := newKubelet(t, 3)
	k.write(10)
	fl, err := Open(k.path, nil, testConfig(), discard())
	if err != nil {
		t.Fatal(err)
	}
	k.rotate() // a new file at the path the Keeper would hold
	fl.Close()
	fl.survey(time.Now())
	if fl.f != nil || len(fl.queue) != 0 {
		t.Fatalf("a closed Follower holds files: current %v, %d queued", fl.f != nil, len(fl.queue))
	}
}

// rotateRacing renames 0.log away and opens the new one, returning the
// renamed file's writer: containerd still writes to it for a moment.
func (k *kubelet) rotateRacing() (old *os.File) {
	k.n++
	if err := os.Rename(k.path, fmt.Sprintf("%s.%06d", k.path, k.n)); err != nil {
		k.t.Fatal(err)
	}
	old = k.w
	k.open()
	return old
}

// TestRenamedFileReadUntilTheRuntimeSwitches: a reader at the end of the
// live file sees it renamed away and a new file at the path, while the
// runtime still writes to the renamed one, even after its first lines in
// the new one (containerd switches stdout and stderr one after the other,
// and the old streams drain their pipes into the old file); those lines
// are read too.
func TestRenamedFileReadUntilTheRuntimeSwitches(t *testing.T) {
	k := newKubelet(t, 5)
	k.write(50)
	cfg := testConfig()
	cfg.RotateWait = time.Second
	fl, err := Open(k.path, nil, cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	var r reading
	readAll(t, fl, &r, k.seq)
	old := k.rotateRacing()
	// The reader looks with the new file empty, then with a line in it.
	look := func() {
		for range 3 {
			c, ok, err := fl.TryNext()
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				r.add(t, c.Data)
			}
		}
	}
	look()
	k.write(1)
	look()
	w := k.w
	k.w = old
	k.write(20) // the old stream's last lines, to the renamed file
	k.w = w
	old.Close()
	k.write(20)
	readAll(t, fl, &r, k.seq)
	// The renamed file's late lines come before the new file's first
	// one: in any order, each once.
	checkEveryLineOnce(t, slices.Sorted(slices.Values(r.seqs)), k.seq)
}

// TestKeeperHoldsAFileLiveBetweenTwoLooks: the Keeper's looks come too far
// apart (logship starved of CPU): a file was live and renamed away between
// two of them, never seen at the path. The next look holds it with the new
// file, before the rotation after that compresses and deletes it.
func TestKeeperHoldsAFileLiveBetweenTwoLooks(t *testing.T) {
	k := newKubelet(t, 10)
	k.write(100)
	fl, keeper, ls, r := keptAfterFirstChunk(t, k) // the reader is busy with its first chunk
	k.write(100)
	k.rotate()
	k.write(100) // the file no look saw at the path
	k.rotate()
	keeper.pass()
	k.write(100)
	k.rotate() // compresses and deletes the plain rotated files
	keeper.pass()
	k.write(100)
	readAll(t, fl, r, k.seq)
	checkEveryLineOnce(t, r.seqs, k.seq)
	if _, _, files := ls.total(); files != 0 {
		t.Fatalf("%d losses reported", files)
	}
}

// keptAfterFirstChunk opens k's log with loss counting, has a Keeper keep
// it, and reads its first chunk: a reader then busy elsewhere.
func keptAfterFirstChunk(t *testing.T, k *kubelet) (*Follower, *Keeper, *losses, *reading) {
	t.Helper()
	ls := new(losses)
	cfg := testConfig()
	cfg.CountLines, cfg.OnLoss = countF, ls.add
	fl, err := Open(k.path, nil, cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fl.Close() })
	keeper := NewKeeper(cfg, discard())
	t.Cleanup(keeper.Keep(fl))
	r := new(reading)
	c, err := fl.Next(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	r.add(t, c.Data)
	return fl, keeper, ls, r
}

// checkEveryLineOnce fails unless seqs is 0, 1, ... want-1: no gap, no
// repeat.
func checkEveryLineOnce(t *testing.T, seqs []int, want int) {
	t.Helper()
	for i, s := range seqs {
		if s != i {
			t.Fatalf("line %d is seq %d: a gap or a repeat", i, s)
		}
	}
	if len(seqs) != want {
		t.Fatalf("read %d lines of %d", len(seqs), want)
	}
}
