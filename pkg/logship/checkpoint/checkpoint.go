// Package checkpoint persists, per container stream, the file position up to
// which CloudWatch has accepted every line.
//
// Positions live in one JSON file in the state directory, replaced
// atomically (write to a temporary file, fsync, rename, fsync the
// directory), so a crash at any instant leaves either the old or the new
// state. Commit returns only once the position is durable: a shipper that
// commits after each accepted batch and before sending the next repeats at
// most the batch in flight after kill -9. Concurrent commits from many
// streams share one write (group commit).
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

	"github.com/nodekit/nodekit/pkg/logship/filepos"
)

// FileName is the state file inside the state directory.
const FileName = "positions.json"

type state struct {
	Version   int                         `json:"version"`
	Positions map[string]filepos.Position `json:"positions"`
	// Meta is what the caller keeps beside a key's position: logship
	// keeps the pod's metadata, so that after a restart the lines of a
	// pod deleted meanwhile still carry its labels.
	Meta map[string]json.RawMessage `json:"meta,omitempty"`
}

// Store holds positions in memory and writes them from Run. Its methods are
// safe for concurrent use.
type Store struct {
	path   string
	logger *slog.Logger

	mu        sync.Mutex
	positions map[string]filepos.Position
	meta      map[string]json.RawMessage
	gen       uint64 // bumped by every change
	written   uint64 // last generation on disk
	writeErr  error  // outcome of the last write
	done      chan struct{}
	kick      chan struct{}
	stopped   chan struct{}

	// Owned by Run: the encoding buffer and the state directory, kept
	// open for its fsyncs (a write per accepted batch on a busy node).
	buf bytes.Buffer
	dir *os.File
}

// Open loads the state in dir, creating dir if needed. A corrupt state file
// is kept aside as positions.json.corrupt and logged: the files are then read
// again from their start, which repeats lines but loses none.
func Open(dir string, logger *slog.Logger) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating state directory %s: %w", dir, err)
	}
	s := &Store{
		path:      filepath.Join(dir, FileName),
		logger:    logger,
		positions: map[string]filepos.Position{},
		meta:      map[string]json.RawMessage{},
		done:      make(chan struct{}),
		kick:      make(chan struct{}, 1),
		stopped:   make(chan struct{}),
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
	if st.Meta != nil {
		s.meta = st.Meta
	}
	return s, nil
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

// SetMeta keeps meta (valid JSON) beside key's position. It is written
// with the next write and does not wait for it: metadata saved a moment
// late only matters if the pod is also deleted in that moment.
func (s *Store) SetMeta(key string, meta json.RawMessage) {
	s.mu.Lock()
	if bytes.Equal(s.meta[key], meta) {
		s.mu.Unlock()
		return
	}
	s.meta[key] = meta
	s.gen++
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Commit saves pos for key and waits until it is on disk (or ctx ends, or
// the store stops). Run must be running.
func (s *Store) Commit(ctx context.Context, key string, pos filepos.Position) error {
	return s.change(ctx, func() { s.positions[key] = pos })
}

// Delete forgets key's position and metadata (its stream is finished) and
// waits until that is on disk.
func (s *Store) Delete(ctx context.Context, key string) error {
	return s.change(ctx, func() { delete(s.positions, key); delete(s.meta, key) })
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
			err := s.writeErr
			s.mu.Unlock()
			return err
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

// Run writes changes until ctx ends, then writes once more and returns.
func (s *Store) Run(ctx context.Context) error {
	defer close(s.stopped)
	defer func() {
		if s.dir != nil {
			s.dir.Close()
			s.dir = nil
		}
	}()
	for {
		select {
		case <-ctx.Done():
			s.flush()
			return nil
		case <-s.kick:
			s.flush()
		}
	}
}

// flush writes the current state if it changed since the last write and
// wakes every waiter.
func (s *Store) flush() {
	s.mu.Lock()
	if s.written == s.gen {
		s.mu.Unlock()
		return
	}
	gen := s.gen
	// Encoded under the lock (a few hundred bytes per container), into a
	// buffer kept across writes.
	s.buf.Reset()
	err := json.NewEncoder(&s.buf).Encode(state{Version: 1, Positions: s.positions, Meta: s.meta})
	s.mu.Unlock()
	if err == nil {
		err = s.writeAtomic(s.buf.Bytes())
	}
	if err != nil {
		s.logger.Error("saving positions failed; lines may be shipped again after a restart", "path", s.path, "err", err)
	}
	s.mu.Lock()
	s.written = gen
	s.writeErr = err
	close(s.done)
	s.done = make(chan struct{})
	s.mu.Unlock()
}

// writeAtomic replaces the state file with data: write a temporary file
// (one name: Run is the only writer, and a leftover of a crash is simply
// truncated), fsync it, rename it over the state file, fsync the directory.
func (s *Store) writeAtomic(data []byte) error {
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("creating temporary positions file %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("replacing %s: %w", s.path, err)
	}
	dir := filepath.Dir(s.path)
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
