// Package checkpoint persists, per container stream, the file position up to
// which CloudWatch has accepted every line, and beside it what logship
// keeps of the stream's pod (its metadata, so that after a restart the
// lines of a pod deleted meanwhile still carry its labels).
//
// Positions live in one JSON file in the state directory, replaced
// atomically (write to a temporary file, fsync, rename, fsync the
// directory), so a crash at any instant leaves either the old or the new
// state. Commit returns only once the position is durable: a shipper that
// commits after each accepted batch and before sending the next repeats at
// most the batch in flight after kill -9. Concurrent commits from many
// streams share one write (group commit). The pods' metadata lives in a
// file of its own, replaced the same way but only when it changes: it
// changes when pods come, go or are relabelled, not with every batch.
//
// A write that fails (a full disk: ENOSPC) leaves the previous file whole
// and its temporary file removed; Run tries again, every few seconds, until
// a write succeeds, and Commit waits until then: the shipper stops
// advancing rather than get ahead of what a restart would know. Failing
// reports it for readiness; Failures counts the failed writes.
package checkpoint

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodekit/nodekit/pkg/logship/filepos"
)

// FileName is the positions file inside the state directory.
const FileName = "positions.json"

// MetaFileName is the metadata file inside the state directory.
const MetaFileName = "pods.json"

type state struct {
	Version   int                         `json:"version"`
	Positions map[string]filepos.Position `json:"positions"`
	// Meta is where versions before pods.json kept the metadata; it is
	// read once to move it there.
	Meta map[string]json.RawMessage `json:"meta,omitempty"`
}

// metaState is the metadata file: what the caller keeps beside each key's
// position.
type metaState struct {
	Version int                        `json:"version"`
	Meta    map[string]json.RawMessage `json:"meta"`
}

// Store holds positions in memory and writes them from Run. Its methods are
// safe for concurrent use.
type Store struct {
	path     string
	metaPath string
	logger   *slog.Logger

	mu        sync.Mutex
	positions map[string]filepos.Position
	meta      map[string]json.RawMessage
	gen       uint64 // bumped by every change
	written   uint64 // last generation on disk
	// metaGen and metaWritten are gen and written for the metadata.
	metaGen, metaWritten uint64
	done                 chan struct{}
	kick                 chan struct{}
	stopped              chan struct{}
	// failSince and failErr describe the write failing now (failSince
	// zero: none); failures counts failed writes.
	failSince time.Time
	failErr   error
	failures  atomic.Uint64

	// Owned by Run: the encoding buffer, the state directory, kept open
	// for its fsyncs (a write per accepted batch on a busy node), and when
	// a failing write was last logged.
	buf    bytes.Buffer
	dir    *os.File
	logged time.Time
	// fs writes the files (the real file system; tests make it fail);
	// now is the clock of the failure log; retryEvery the first wait
	// before a failed write is tried again.
	fs         fileSystem
	now        func() time.Time
	retryEvery time.Duration
}

// fileSystem is what writeAtomic needs of the file system.
type fileSystem interface {
	create(name string) (writeFile, error)
	rename(from, to string) error
	remove(name string) error
}

type writeFile interface {
	Write(p []byte) (int, error)
	Sync() error
	Close() error
}

// osFS is the real file system.
type osFS struct{}

func (osFS) create(name string) (writeFile, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
}
func (osFS) rename(from, to string) error { return os.Rename(from, to) }
func (osFS) remove(name string) error     { return os.Remove(name) }

// The wait before a failed write is tried again doubles from a second up
// to maxRetryEvery.
const (
	maxRetryEvery = 10 * time.Second
	// failureLogEvery is how often a write that keeps failing is logged.
	failureLogEvery = time.Minute
)

// Open loads the state in dir, creating dir if needed. A corrupt state file
// is kept aside as positions.json.corrupt and logged: the files are then read
// again from their start, which repeats lines but loses none.
func Open(dir string, logger *slog.Logger) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating state directory %s: %w", dir, err)
	}
	s := &Store{
		path:       filepath.Join(dir, FileName),
		metaPath:   filepath.Join(dir, MetaFileName),
		logger:     logger,
		positions:  map[string]filepos.Position{},
		meta:       map[string]json.RawMessage{},
		done:       make(chan struct{}),
		kick:       make(chan struct{}, 1),
		stopped:    make(chan struct{}),
		fs:         osFS{},
		now:        time.Now,
		retryEvery: time.Second,
	}
	if err := s.loadMeta(); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("reading positions %s: %w", s.path, err)
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil || st.Version != 1 {
		aside := s.path + ".corrupt"
		logger.Error("positions file unreadable, starting over; files will be read from their start", "path", s.path, "kept_as", aside, "err", err)
		if err := os.Rename(s.path, aside); err != nil {
			return nil, fmt.Errorf("moving aside corrupt positions %s: %w", s.path, err)
		}
		return s, nil
	}
	if st.Positions != nil {
		s.positions = st.Positions
	}
	if len(st.Meta) > 0 {
		// Written by a version that kept the metadata with the
		// positions: move it to its own file at the first write.
		for k, m := range st.Meta {
			if _, ok := s.meta[k]; !ok {
				s.meta[k] = m
			}
		}
		s.gen++
		s.metaGen++
	}
	return s, nil
}

// loadMeta reads the metadata file; an unreadable one is set aside: only
// the labels of pods deleted while logship was down are lost with it.
func (s *Store) loadMeta() error {
	data, err := os.ReadFile(s.metaPath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("reading pod metadata %s: %w", s.metaPath, err)
	}
	var st metaState
	if err := json.Unmarshal(data, &st); err != nil || st.Version != 1 {
		aside := s.metaPath + ".corrupt"
		s.logger.Error("pod metadata file unreadable, starting without it; lines of pods deleted while logship was down ship without labels", "path", s.metaPath, "kept_as", aside, "err", err)
		if err := os.Rename(s.metaPath, aside); err != nil {
			return fmt.Errorf("moving aside corrupt pod metadata %s: %w", s.metaPath, err)
		}
		return nil
	}
	if st.Meta != nil {
		s.meta = st.Meta
	}
	return nil
}

// Get returns the position saved for key.
func (s *Store) Get(key string) (filepos.Position, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.positions[key]
	return p, ok
}

// Keys lists every key with a saved position or metadata.
func (s *Store) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.positions))
	for k := range s.positions {
		keys = append(keys, k)
	}
	for k := range s.meta {
		if _, ok := s.positions[k]; !ok {
			keys = append(keys, k)
		}
	}
	return keys
}

// Meta returns the metadata saved for key.
func (s *Store) Meta(key string) (json.RawMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.meta[key]
	return m, ok
}

// SetMeta keeps meta (valid JSON) beside key's position. The metadata
// file is rewritten when it changes, by Run, without waiting: metadata
// saved a moment late only matters if the pod is also deleted in that
// moment.
func (s *Store) SetMeta(key string, meta json.RawMessage) {
	s.mu.Lock()
	if bytes.Equal(s.meta[key], meta) {
		s.mu.Unlock()
		return
	}
	s.meta[key] = meta
	s.metaGen++
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Commit saves pos for key and waits until it is on disk (or ctx ends, or
// the store stops): while writes fail, until one succeeds. Run must be
// running.
func (s *Store) Commit(ctx context.Context, key string, pos filepos.Position) error {
	return s.change(ctx, func() { s.positions[key] = pos })
}

// Delete forgets key's position and metadata (its stream is finished) and
// waits until that is on disk.
func (s *Store) Delete(ctx context.Context, key string) error {
	return s.change(ctx, func() {
		delete(s.positions, key)
		if _, ok := s.meta[key]; ok {
			delete(s.meta, key)
			s.metaGen++
		}
	})
}

// change applies f under the lock and waits for the write that has it.
func (s *Store) change(ctx context.Context, f func()) error {
	s.mu.Lock()
	f()
	s.gen++
	want := s.gen
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	for {
		s.mu.Lock()
		if s.written >= want {
			s.mu.Unlock()
			return nil
		}
		done := s.done
		s.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("waiting for positions to be saved: %w", ctx.Err())
		case <-s.stopped:
			return errors.New("positions store stopped before saving")
		}
	}
}

// Failing reports a write failing now: since when, and its error.
func (s *Store) Failing() (since time.Time, err error, failing bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failSince, s.failErr, !s.failSince.IsZero()
}

// Failures counts the writes that failed.
func (s *Store) Failures() uint64 { return s.failures.Load() }

// Run writes changes until ctx ends, then writes once more and returns. A
// failed write is tried again after a wait, until one succeeds.
func (s *Store) Run(ctx context.Context) error {
	defer close(s.stopped)
	defer func() {
		if s.dir != nil {
			s.dir.Close()
			s.dir = nil
		}
	}()
	retry := time.NewTimer(0)
	retry.Stop()
	defer retry.Stop()
	wait := s.retryEvery
	for {
		select {
		case <-ctx.Done():
			s.flush()
			return nil
		case <-s.kick:
		case <-retry.C:
		}
		if s.flush() {
			wait = s.retryEvery
			continue
		}
		// Waiters wait on; the next try comes after the wait or with
		// the next change, whichever is first.
		retry.Reset(wait)
		wait = min(2*wait, max(maxRetryEvery, s.retryEvery))
	}
}

// flush writes the positions and the metadata that changed since their
// last write, and wakes the waiters once the positions are on disk. It
// reports false when a write failed.
func (s *Store) flush() bool {
	s.mu.Lock()
	if s.written == s.gen && s.metaWritten == s.metaGen {
		s.mu.Unlock()
		return true
	}
	gen, metaGen := s.gen, s.metaGen
	var metaData []byte
	var metaErr error
	if s.metaWritten != metaGen {
		// Rare (pods come and go): a buffer of its own.
		metaData, metaErr = json.Marshal(metaState{Version: 1, Meta: s.meta})
	}
	var err error
	if s.written != gen {
		// Encoded under the lock (a few hundred bytes per container),
		// into a buffer kept across writes.
		s.buf.Reset()
		err = json.NewEncoder(&s.buf).Encode(state{Version: 1, Positions: s.positions})
	}
	s.mu.Unlock()
	// Positions first: they are what waiters wait for.
	posDone := s.written == gen
	if !posDone && err == nil {
		err = s.writeAtomic(s.path, s.buf.Bytes())
	}
	if metaData != nil && metaErr == nil {
		metaErr = s.writeAtomic(s.metaPath, metaData)
	}
	failed := errors.Join(err, metaErr)
	s.mu.Lock()
	if metaData != nil && metaErr == nil {
		s.metaWritten = metaGen
	}
	since := s.failSince
	switch {
	case failed != nil && since.IsZero():
		s.failSince, since = s.now(), s.now()
		s.failErr = failed
	case failed != nil:
		s.failErr = failed
	default:
		s.failSince, s.failErr = time.Time{}, nil
	}
	s.mu.Unlock()
	// Logged before the waiters wake: what they do next comes after.
	s.logFailure(failed, since)
	if !posDone && err == nil {
		s.mu.Lock()
		s.written = gen
		close(s.done)
		s.done = make(chan struct{})
		s.mu.Unlock()
	}
	return failed == nil
}

// logFailure logs a failed write at once, then once every
// failureLogEvery while writes keep failing, and the first success after.
func (s *Store) logFailure(err error, since time.Time) {
	now := s.now()
	switch {
	case err != nil:
		s.failures.Add(1)
		if !s.logged.IsZero() && now.Sub(s.logged) < failureLogEvery {
			return
		}
		s.logged = now
		s.logger.Error("saving checkpoints failed; shipping is paused until a save succeeds (nothing is lost: lines wait in the log files), retrying",
			"dir", filepath.Dir(s.path), "failing_for", now.Sub(since).Round(time.Second), "failed_writes", s.failures.Load(), "err", err)
	case !s.logged.IsZero():
		s.logged = time.Time{}
		s.logger.Info("saving checkpoints works again; shipping resumes", "dir", filepath.Dir(s.path))
	}
}

// writeAtomic replaces the file path with data: write a temporary file
// (one name: Run is the only writer, and a leftover of a crash is simply
// truncated), fsync it, rename it over path, fsync the directory.
func (s *Store) writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := s.fs.create(tmp)
	if err != nil {
		return fmt.Errorf("creating temporary file %s: %w", tmp, err)
	}
	// On failure the temporary file goes: on a full disk its blocks are
	// what the next try needs.
	fail := func(err error) error {
		f.Close()
		s.fs.remove(tmp)
		return err
	}
	if _, err := f.Write(data); err != nil {
		return fail(fmt.Errorf("writing %s: %w", tmp, err))
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("syncing %s: %w", tmp, err))
	}
	if err := f.Close(); err != nil {
		s.fs.remove(tmp)
		return fmt.Errorf("closing %s: %w", tmp, err)
	}
	if err := s.fs.rename(tmp, path); err != nil {
		s.fs.remove(tmp)
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if s.dir == nil {
		if s.dir, err = os.Open(dir); err != nil {
			return fmt.Errorf("opening %s to sync it: %w", dir, err)
		}
	}
	if err := s.dir.Sync(); err != nil {
		// Reopen next time, in case the handle went bad.
		s.dir.Close()
		s.dir = nil
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}
