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
	writeErr  error  // outcome of the last write
	// metaGen and metaWritten are gen and written for the metadata.
	metaGen, metaWritten uint64
	done                 chan struct{}
	kick                 chan struct{}
	stopped              chan struct{}

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
		metaPath:  filepath.Join(dir, MetaFileName),
		logger:    logger,
		positions: map[string]filepos.Position{},
		meta:      map[string]json.RawMessage{},
		done:      make(chan struct{}),
		kick:      make(chan struct{}, 1),
		stopped:   make(chan struct{}),
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
// the store stops). Run must be running.
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

// flush writes the positions and the metadata that changed since their
// last write, and wakes every waiter.
func (s *Store) flush() {
	s.mu.Lock()
	if s.written == s.gen && s.metaWritten == s.metaGen {
		s.mu.Unlock()
		return
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
	if metaData != nil && metaErr == nil {
		metaErr = s.writeAtomic(s.metaPath, metaData)
	}
	if metaErr != nil {
		s.logger.Error("saving pod metadata failed; lines of pods deleted before the next save may ship without labels after a restart", "path", s.metaPath, "err", metaErr)
	}
	if s.written != gen {
		if err == nil {
			err = s.writeAtomic(s.path, s.buf.Bytes())
		}
		if err != nil {
			s.logger.Error("saving positions failed; lines may be shipped again after a restart", "path", s.path, "err", err)
		}
	}
	s.mu.Lock()
	if metaErr == nil {
		s.metaWritten = metaGen
	}
	if s.written != gen {
		s.written = gen
		s.writeErr = err
		close(s.done)
		s.done = make(chan struct{})
	}
	s.mu.Unlock()
}

// writeAtomic replaces the file path with data: write a temporary file
// (one name: Run is the only writer, and a leftover of a crash is simply
// truncated), fsync it, rename it over path, fsync the directory.
func (s *Store) writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("creating temporary file %s: %w", tmp, err)
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
	if err := os.Rename(tmp, path); err != nil {
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
