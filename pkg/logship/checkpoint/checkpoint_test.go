package checkpoint

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodekit/nodekit/pkg/logship/filepos"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// run starts s.Run and stops it when the test ends.
func run(t *testing.T, s *Store) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

func TestCommitRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, discard())
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	pos := filepos.Position{Path: "/var/log/pods/a/0.log", ID: filepos.Identity{Dev: 1, Ino: 2, FPLen: 3, FP: 4}, Offset: 99}
	if err := s.Commit(context.Background(), "a", pos); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(context.Background(), "b", pos); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(context.Background(), "b"); err != nil {
		t.Fatal(err)
	}
	// Commit returned: the position must already be on disk.
	s2, err := Open(dir, discard())
	if err != nil {
		t.Fatal(err)
	}
	got, ok := s2.Get("a")
	if !ok || got != pos {
		t.Fatalf("reloaded %+v %v, want %+v", got, ok, pos)
	}
	if _, ok := s2.Get("b"); ok {
		t.Fatal("deleted key came back")
	}
}

func TestCommitWaitsForRun(t *testing.T) {
	s, err := Open(t.TempDir(), discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Commit(ctx, "a", filepos.Position{Offset: 1}); err == nil {
		t.Fatal("commit returned without a writer running")
	}
}

func TestConcurrentCommits(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, discard())
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				if err := s.Commit(context.Background(), fmt.Sprint("k", w), filepos.Position{Offset: int64(i)}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	s2, err := Open(dir, discard())
	if err != nil {
		t.Fatal(err)
	}
	for w := range 8 {
		if p, _ := s2.Get(fmt.Sprint("k", w)); p.Offset != 49 {
			t.Errorf("k%d offset %d, want 49", w, p.Offset)
		}
	}
}

func TestCorruptFileSetAside(t *testing.T) {
	for _, content := range []string{"{not json", `{"version":7}`, ""} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, discard())
		if err != nil {
			t.Fatalf("%q: %v", content, err)
		}
		if len(s.Keys()) != 0 {
			t.Fatalf("%q: keys from a corrupt file", content)
		}
		if _, err := os.Stat(filepath.Join(dir, FileName+".corrupt")); err != nil {
			t.Fatalf("%q: corrupt file not kept: %v", content, err)
		}
	}
}

// TestKillDuringCommits kills a process that commits in a tight loop, then
// checks the state file is whole and holds at least the last offset the
// process reported as committed.
func TestKillDuringCommits(t *testing.T) {
	if os.Getenv("CHECKPOINT_HELPER_DIR") != "" {
		helper()
		return
	}
	for round := range 3 {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillDuringCommits$")
		cmd.Env = append(os.Environ(), "CHECKPOINT_HELPER_DIR="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		var last int64
		for sc.Scan() {
			n, err := strconv.ParseInt(sc.Text(), 10, 64)
			if err != nil {
				continue
			}
			last = n
			if n >= int64(200+round*37) {
				break
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		s, err := Open(dir, discard())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, FileName+".corrupt")); err == nil {
			t.Fatal("state file was corrupt after kill -9")
		}
		p, ok := s.Get("stream")
		if !ok || p.Offset < last {
			t.Fatalf("after kill: offset %d (present %v), last committed %d", p.Offset, ok, last)
		}
	}
}

func helper() {
	s, err := Open(os.Getenv("CHECKPOINT_HELPER_DIR"), discard())
	if err != nil {
		panic(err)
	}
	go s.Run(context.Background()) //nolint: killed with the process
	for i := int64(1); ; i++ {
		if err := s.Commit(context.Background(), "stream", filepos.Position{Path: "p", Offset: i}); err != nil {
			panic(err)
		}
		fmt.Println(i)
	}
}

// BenchmarkCommit is the cost of one durable commit with 50 containers'
// positions in the file (a sender commits after every accepted batch).
func BenchmarkCommit(b *testing.B) {
	s, err := Open(b.TempDir(), discard())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	pos := filepos.Position{Path: "/var/log/pods/shop_web-1_0b5e7f0e-8f0a-4f7e-9a57-2f5b2c1f8c11/app/0.log", ID: filepos.Identity{Dev: 1, Ino: 2, FPLen: 3, FP: 4}}
	for i := range 50 {
		if err := s.Commit(ctx, fmt.Sprintf("shop_web-%d_app", i), pos); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		pos.Offset++
		if err := s.Commit(ctx, "shop_web-1_app", pos); err != nil {
			b.Fatal(err)
		}
	}
}

// Metadata kept beside a position is written with the next write, comes
// back after a restart, and goes with Delete; a key with metadata only is
// listed, so a stale one can be forgotten.
func TestMetaRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, discard())
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	meta := []byte(`{"uid":"u1","labels":{"app":"web"}}`)
	s.SetMeta("a", meta)
	s.SetMeta("b", []byte(`{"uid":"u2"}`))
	s.SetMeta("c", []byte(`{"uid":"u3"}`))
	pos := filepos.Position{Path: "/var/log/pods/a/0.log", Offset: 7}
	// Commit waits for a write made after SetMeta: the metadata is in it.
	if err := s.Commit(context.Background(), "a", pos); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(context.Background(), "b"); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, discard())
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := s2.Meta("a"); !ok || string(got) != string(meta) {
		t.Fatalf("reloaded metadata %s %v, want %s", got, ok, meta)
	}
	if _, ok := s2.Meta("b"); ok {
		t.Fatal("deleted key's metadata came back")
	}
	keys := s2.Keys()
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"a", "c"}) {
		t.Fatalf("keys %v, want [a c] (c has metadata only)", keys)
	}
}

// inode is the inode of path: an atomic replace gives the file a new one.
func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return filepos.Inode(fi).Ino
}

// TestCommitsLeaveMetadataAlone: pod metadata lives in its own file,
// written when it changes; a commit (after every accepted batch) rewrites
// and syncs the positions only.
func TestCommitsLeaveMetadataAlone(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, discard())
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	ctx := context.Background()
	meta := []byte(`{"uid":"u1","labels":{"app":"web"}}`)
	s.SetMeta("a", meta)
	pos := filepos.Position{Path: "/var/log/pods/a/0.log", Offset: 7}
	if err := s.Commit(ctx, "a", pos); err != nil {
		t.Fatal(err)
	}
	metaFile := filepath.Join(dir, MetaFileName)
	before := inode(t, metaFile)
	for range 5 {
		pos.Offset++
		if err := s.Commit(ctx, "a", pos); err != nil {
			t.Fatal(err)
		}
	}
	s.SetMeta("a", meta) // unchanged: nothing to write
	if err := s.Commit(ctx, "a", pos); err != nil {
		t.Fatal(err)
	}
	if after := inode(t, metaFile); after != before {
		t.Error("commits rewrote the metadata file")
	}
	positions, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(positions), "labels") {
		t.Errorf("the positions file carries the metadata: %s", positions)
	}
	s.SetMeta("a", []byte(`{"uid":"u1","labels":{"app":"web","v":"2"}}`))
	if err := s.Commit(ctx, "a", pos); err != nil {
		t.Fatal(err)
	}
	if after := inode(t, metaFile); after == before {
		t.Error("changed metadata was not written")
	}
}

// TestOldFormatMetadataMoves: a positions file written before pods.json
// existed carries the metadata; it moves to its own file at the first
// write and is not lost.
func TestOldFormatMetadataMoves(t *testing.T) {
	dir := t.TempDir()
	old := `{"version":1,"positions":{"a":{"path":"/p/0.log","id":{"dev":1,"ino":2,"fp_len":3,"fp":4},"offset":9}},"meta":{"a":{"uid":"u1"},"gone":{"uid":"u2"}}}`
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, discard())
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := s.Meta("gone"); !ok || string(got) != `{"uid":"u2"}` {
		t.Fatalf("old metadata: %s %v", got, ok)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	cancel() // Run writes once more on the way out
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	positions, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(positions), "uid") {
		t.Errorf("positions still carry metadata: %s", positions)
	}
	s2, err := Open(dir, discard())
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := s2.Meta("a"); !ok || string(got) != `{"uid":"u1"}` {
		t.Fatalf("moved metadata: %s %v", got, ok)
	}
	if got, ok := s2.Get("a"); !ok || got.Offset != 9 {
		t.Fatalf("position after the move: %+v %v", got, ok)
	}
}

// fullDisk is the real file system until it is full: then creating,
// writing (after half the bytes, as a write that ran out of blocks) or
// syncing fails with ENOSPC, as fail says.
type fullDisk struct {
	osFS
	mu   sync.Mutex
	full bool
	fail string // "create", "write" or "sync"
}

func (d *fullDisk) setFull(full bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.full = full
}

func (d *fullDisk) failing(op string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.full && d.fail == op
}

func (d *fullDisk) create(name string) (writeFile, error) {
	if d.failing("create") {
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.ENOSPC}
	}
	f, err := d.osFS.create(name)
	if err != nil {
		return nil, err
	}
	return &fullFile{writeFile: f, d: d}, nil
}

type fullFile struct {
	writeFile
	d *fullDisk
}

func (f *fullFile) Write(p []byte) (int, error) {
	if f.d.failing("write") {
		n, _ := f.writeFile.Write(p[:len(p)/2])
		return n, syscall.ENOSPC
	}
	return f.writeFile.Write(p)
}

func (f *fullFile) Sync() error {
	if f.d.failing("sync") {
		return syscall.ENOSPC
	}
	return f.writeFile.Sync()
}

// TestFullDiskPausesCommitsAndResumes: while the state directory's disk is
// full, a commit waits (the shipper cannot get ahead of what a restart
// would know), the positions file stays whole with the last position
// saved, no temporary file is left taking space, the failure is counted,
// reported and logged once however often it is retried; when space
// returns the commit goes through by itself.
func TestFullDiskPausesCommitsAndResumes(t *testing.T) {
	for _, op := range []string{"create", "write", "sync"} {
		t.Run(op, func(t *testing.T) {
			dir := t.TempDir()
			var logs strings.Builder
			var logMu sync.Mutex
			logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
				logMu.Lock()
				defer logMu.Unlock()
				return logs.Write(p)
			}), nil))
			s, err := Open(dir, logger)
			if err != nil {
				t.Fatal(err)
			}
			disk := &fullDisk{fail: op}
			s.fs, s.retryEvery = disk, time.Millisecond
			run(t, s)
			ctx := context.Background()
			first := filepos.Position{Path: "/p/0.log", Offset: 100}
			if err := s.Commit(ctx, "k", first); err != nil {
				t.Fatal(err)
			}

			disk.setFull(true)
			done := make(chan error, 1)
			go func() { done <- s.Commit(ctx, "k", filepos.Position{Path: "/p/0.log", Offset: 200}) }()
			for s.Failures() < 5 {
				select {
				case err := <-done:
					t.Fatalf("a commit returned (%v) while the disk is full", err)
				case <-time.After(time.Millisecond):
				}
			}
			if _, err, failing := s.Failing(); !failing || !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("Failing() = %v, %v; want ENOSPC", err, failing)
			}
			if got := savedOffset(t, dir); got != 100 {
				t.Errorf("positions file says offset %d while the disk is full, want the last saved 100", got)
			}
			if _, err := os.Stat(filepath.Join(dir, FileName+".tmp")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a temporary file is left on the full disk: %v", err)
			}

			disk.setFull(false)
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(time.Minute):
				t.Fatal("the commit did not go through once space returned")
			}
			if got := savedOffset(t, dir); got != 200 {
				t.Errorf("positions file says offset %d, want 200", got)
			}
			if _, _, failing := s.Failing(); failing {
				t.Error("still failing after a write succeeded")
			}
			logMu.Lock()
			out := logs.String()
			logMu.Unlock()
			if n := strings.Count(out, "saving checkpoints failed"); n != 1 {
				t.Errorf("the failure was logged %d times over %d failed writes, want once a minute", n, s.Failures())
			}
			if !strings.Contains(out, "saving checkpoints works again") {
				t.Error("the recovery was not logged")
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// savedOffset reads the positions file as a restart would, failing the
// test if it is not whole.
func savedOffset(t *testing.T, dir string) int64 {
	t.Helper()
	s, err := Open(dir, discard())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName+".corrupt")); err == nil {
		t.Fatal("the positions file was corrupt")
	}
	p, ok := s.Get("k")
	if !ok {
		t.Fatal("no position saved")
	}
	return p.Offset
}
