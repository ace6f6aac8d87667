package tail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nodekit/nodekit/pkg/logship/filepos"
)

// Config tunes a Follower.
type Config struct {
	// PollInterval is how often a file at its end is checked for growth,
	// rotation and truncation. A file that stays quiet is checked less
	// often, down to once every quietPolls×PollInterval: a node has many
	// containers that rarely log, and each check wakes the process.
	PollInterval time.Duration
	// BufferSize is the read size; large reads keep syscalls per byte low.
	BufferSize int
	// MaxLine bounds a line's length; a longer run without a newline is
	// handed out in pieces (the parser then sees several lines).
	MaxLine int
	// MaxHold bounds how long a rotated or deleted file is kept open while
	// it is read; after that its unread bytes are given up (and reported
	// through Lost), so a stuck reader cannot pin disk space forever.
	MaxHold time.Duration

	// buffers lends read buffers; DefaultConfig's is shared by every
	// Follower opened with a copy of it, and a Config without one gets
	// a pool of its own at Open.
	buffers *bufferPool
}

// DefaultConfig is what logship uses.
func DefaultConfig() Config {
	return Config{PollInterval: 250 * time.Millisecond, BufferSize: 256 << 10, MaxLine: 4 << 20, MaxHold: 10 * time.Minute, buffers: new(bufferPool)}
}

// Chunk is a run of complete lines read from one file.
type Chunk struct {
	Path string
	ID   filepos.Identity
	// Start is the file offset of Data[0].
	Start int64
	// Data holds whole lines, each ending in '\n' except, when Final is
	// set, possibly the last. It aliases the Follower's buffer and is valid
	// until the next call to Next or Close (the buffer is then given back to
	// a pool other Followers borrow from).
	Data []byte
	// Final is set on the last chunk of a file that will not be read again
	// (rotated away and read to its end, or drained): the reader flushes
	// what it joins across lines.
	Final bool
}

// Follower reads one stream's log file path and the files it rotates to.
// Next is called by one goroutine; Drain and HeldBytes may be called from
// any.
type Follower struct {
	path   string
	cfg    Config
	logger *slog.Logger
	now    func() time.Time

	f    *os.File
	name string // path f was opened as
	id   filepos.Identity
	off  int64 // offset of buf[0] in f
	// buf is borrowed from cfg.buffers (bufp is its holder) while there
	// is data to hand out or a partial line to keep, and nil otherwise:
	// a caught-up file holds no buffer.
	buf    []byte
	bufp   *[]byte
	filled int  // bytes of buf holding data
	full   bool // the last read filled buf: the file is busy
	handed int  // bytes of buf handed out by the last Next

	// queue holds rotated files still to read before path, oldest first.
	queue []filepos.Position
	// inCopy is set while reading a copytruncate copy, rotated once f was
	// seen renamed away: at their end they are finished.
	inCopy, rotated bool
	// done is set once the drained stream has been read to its end.
	done bool
	// startOff is where to start in path the first time it is opened.
	startOff int64
	// after is the rotated name of the file just finished: rotated files
	// sorting after it are newer and are read before path.
	after string

	heldSince time.Time // when f was seen rotated or deleted
	// quiet counts the polls in a row that found nothing new.
	quiet int
	// notifier, when set, wakes the Follower while it is quiet; watched
	// says it does now.
	notifier *Notifier
	watched  atomic.Bool

	// Reused by every poll, so that a caught-up file costs a few
	// syscalls and no allocation: a node has many of them, polled
	// several times a second.
	st     syscall.Stat_t // f's, from the last fstat
	pathSt syscall.Stat_t // path's, from the last stat
	head   [filepos.FingerprintBytes]byte
	// headAt is the identity, size and change time at which f's head
	// last matched id; while none changes the head cannot have either.
	headAt struct {
		id                        filepos.Identity
		ino                       uint64
		size, ctimeSec, ctimeNsec int64
	}
	timer    *time.Timer
	draining atomic.Bool
	wake     chan struct{}
	held     atomic.Int64 // unread bytes of a deleted file we hold open
	lost     atomic.Int64
}

// Open starts following path. With a saved position the Follower resumes
// there: if the saved file was rotated since, it is found by identity in
// path's directory and read to its end first, followed by any newer rotated
// file, so a restart loses nothing the kubelet has not compressed yet.
func Open(path string, from *filepos.Position, cfg Config, logger *slog.Logger) (*Follower, error) {
	if cfg.BufferSize <= 0 || cfg.PollInterval <= 0 || cfg.MaxLine < cfg.BufferSize {
		return nil, fmt.Errorf("invalid tail config for %s: %+v", path, cfg)
	}
	if cfg.buffers == nil {
		cfg.buffers = new(bufferPool)
	}
	fl := &Follower{path: path, cfg: cfg, logger: logger.With("path", path), now: time.Now, wake: make(chan struct{}, 1)}
	if from != nil {
		fl.queue = fl.resume(*from)
	} else {
		// A stream seen for the first time: anything already rotated
		// away is older than path and read first, so a rotation before
		// logship got to the file (or while it was not running) loses
		// nothing.
		for _, name := range rotatedFiles(filepath.Dir(path), filepath.Base(path)) {
			fl.queue = append(fl.queue, filepos.Position{Path: name})
		}
	}
	// Open now rather than at the first Next, so that a rotation between
	// Open and Next is followed rather than skipped.
	if _, err := fl.openNext(); err != nil {
		return nil, err
	}
	return fl, nil
}

// resume works out which files to read, from where, to continue from pos.
func (fl *Follower) resume(pos filepos.Position) []filepos.Position {
	if f, err := os.Open(fl.path); err == nil {
		match, same, err := filepos.Matches(f, pos.ID)
		f.Close()
		if err == nil && match && same {
			fl.startOff = pos.Offset
			return nil
		}
	}
	dir := filepath.Dir(fl.path)
	rotated := rotatedFiles(dir, filepath.Base(fl.path))
	if pos.Path != fl.path && !slices.Contains(rotated, pos.Path) {
		rotated = append([]string{pos.Path}, rotated...)
	}
	for i, name := range rotated {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		match, same, err := filepos.Matches(f, pos.ID)
		f.Close()
		// A copytruncate copy has another inode but the same head.
		if err != nil || !match || (!same && pos.ID.FPLen < 64) {
			continue
		}
		q := []filepos.Position{{Path: name, ID: pos.ID, Offset: pos.Offset}}
		for _, newer := range rotated[i+1:] {
			q = append(q, filepos.Position{Path: newer})
		}
		fl.logger.Info("resuming from a rotated file", "rotated", name, "offset", pos.Offset, "then", len(q)-1)
		return q
	}
	fl.logger.Warn("saved file is gone (compressed or deleted); lines written to it after the saved offset are lost", "saved_path", pos.Path, "offset", pos.Offset)
	fl.lost.Add(1)
	return nil
}

// rotatedFiles lists base.<suffix> files in dir that are not compressed,
// oldest first (kubelet suffixes sort by time).
func rotatedFiles(dir, base string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(n, base+".") || strings.HasSuffix(n, ".gz") || strings.HasSuffix(n, ".tmp") {
			continue
		}
		out = append(out, filepath.Join(dir, n))
	}
	slices.Sort(out)
	return out
}

// busy notes that the file gave something: it is polled at the full rate
// again, and no longer watched (its writes would each queue an event).
func (fl *Follower) busy() {
	fl.quiet = 0
	if fl.notifier != nil {
		fl.notifier.unwatch(fl)
	}
}

// Wake makes a waiting Next look at the file now (it changed).
func (fl *Follower) Wake() {
	select {
	case fl.wake <- struct{}{}:
	default:
	}
}

// Drain tells the Follower its stream is finished (the container is gone):
// Next reads what is left and then returns io.EOF.
func (fl *Follower) Drain() {
	fl.draining.Store(true)
	select {
	case fl.wake <- struct{}{}:
	default:
	}
}

// HeldBytes is the number of unread bytes in a deleted file kept open.
func (fl *Follower) HeldBytes() int64 { return fl.held.Load() }

// Lost counts files given up before they were read to their end.
func (fl *Follower) Lost() int64 { return fl.lost.Load() }

// Close releases the open file and the read buffer.
func (fl *Follower) Close() error {
	fl.release()
	if fl.f == nil {
		return nil
	}
	err := fl.f.Close()
	fl.f = nil
	return err
}

// Next blocks until it can return a chunk, ctx ends, or (after Drain) the
// stream is finished, when it returns io.EOF.
func (fl *Follower) Next(ctx context.Context) (Chunk, error) {
	// Drop what the previous call handed out.
	if fl.handed > 0 {
		copy(fl.buf, fl.buf[fl.handed:fl.filled])
		fl.filled -= fl.handed
		fl.off += int64(fl.handed)
		fl.handed = 0
	}
	if fl.filled == 0 {
		// Caught up (or between files): give the buffer back; the
		// next read borrows one.
		fl.release()
	}
	for {
		if fl.done {
			return Chunk{}, io.EOF
		}
		if fl.f == nil {
			ok, err := fl.openNext()
			if err != nil {
				return Chunk{}, err
			}
			if !ok {
				if fl.draining.Load() {
					return Chunk{}, io.EOF
				}
				if err := fl.sleep(ctx); err != nil {
					return Chunk{}, err
				}
				continue
			}
		}
		if c, ok, err := fl.checkHold(); err != nil || ok {
			fl.busy()
			return c, err
		}
		// A caught-up file that has not grown is not read: reading would
		// borrow a buffer only to find nothing.
		if fl.buf != nil || fl.st.Size > fl.off {
			if c, ok, err := fl.read(); err != nil || ok {
				fl.busy()
				return c, err
			}
		}
		// At the end of the file: find out whether it will grow again.
		c, action, err := fl.atEOF()
		if err != nil {
			return Chunk{}, err
		}
		switch action {
		case handOut:
			fl.busy()
			return c, nil
		case readMore:
			continue
		}
		if err := fl.sleep(ctx); err != nil {
			return Chunk{}, err
		}
	}
}

// quietPolls is how many empty polls in a row double the wait between two
// polls: 250 ms becomes 500 ms after 2 s of quiet and 1 s after 4 s more.
// A file a Notifier watches is woken by its changes, so its polls, a
// safety net, keep doubling up to 8 s.
const quietPolls = 8

// pollWait is how long to wait before the next poll of a file that has
// been quiet for fl.quiet polls.
func (fl *Follower) pollWait() time.Duration {
	doublings := 2
	if fl.watched.Load() {
		doublings = 5
	}
	return fl.cfg.PollInterval << min(fl.quiet/quietPolls, doublings)
}

func (fl *Follower) sleep(ctx context.Context) error {
	if fl.notifier != nil && !fl.watched.Load() && fl.quiet >= quietPolls {
		fl.notifier.watch(fl)
	}
	d := fl.pollWait()
	fl.quiet++
	if fl.timer == nil {
		fl.timer = time.NewTimer(d)
	} else {
		fl.timer.Reset(d)
	}
	select {
	case <-ctx.Done():
		fl.timer.Stop()
		return ctx.Err()
	case <-fl.timer.C:
	case <-fl.wake:
		fl.timer.Stop()
	}
	return nil
}

// openNext opens the next queued file, or path itself.
func (fl *Follower) openNext() (bool, error) {
	var f *os.File
	var err error
	if len(fl.queue) == 0 && fl.after != "" {
		// Several rotations may have happened while we read one file: the
		// rotated files sorting after the one just finished are newer.
		// path is opened (and its head taken) before listing them, so a
		// copytruncate copy of the very content we open is recognised by
		// its head and left to the truncation handling instead of being
		// read twice.
		f, err = os.Open(fl.path)
		var head filepos.Identity
		if err == nil {
			head, err = filepos.Identify(f)
		}
		for _, name := range rotatedFiles(filepath.Dir(fl.path), filepath.Base(fl.path)) {
			if name <= fl.after {
				continue
			}
			if err == nil && head.FPLen > 0 && sameHead(name, head) {
				break
			}
			fl.queue = append(fl.queue, filepos.Position{Path: name})
		}
		fl.after = ""
		if f != nil && (err != nil || len(fl.queue) > 0) {
			f.Close()
			f = nil
		}
		err = nil
	}
	pos := filepos.Position{Path: fl.path, Offset: fl.startOff}
	if len(fl.queue) > 0 {
		pos = fl.queue[0]
	}
	if f == nil {
		f, err = os.Open(pos.Path)
	}
	if err != nil {
		if len(fl.queue) > 0 {
			fl.logger.Warn("rotated file vanished before it was read", "rotated", pos.Path, "err", err)
			fl.lost.Add(1)
			fl.queue = fl.queue[1:]
			return false, nil
		}
		if errors.Is(err, os.ErrNotExist) {
			return false, nil // mid-rotation or container gone: wait for either
		}
		return false, fmt.Errorf("opening log file %s: %w", pos.Path, err)
	}
	id, err := filepos.Identify(f)
	if err != nil {
		f.Close()
		return false, err
	}
	off := pos.Offset
	if fi, err := f.Stat(); err == nil && off > fi.Size() {
		off = 0
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return false, fmt.Errorf("seeking %s to %d: %w", pos.Path, off, err)
	}
	if pos.Path == fl.path {
		fl.startOff = 0
	}
	fl.logger.Debug("opened", "name", pos.Path, "offset", off, "id", id, "queue", len(fl.queue))
	fl.f, fl.name, fl.id, fl.off, fl.filled, fl.handed = f, pos.Path, id, off, 0, 0
	fl.heldSince, fl.rotated, fl.inCopy = time.Time{}, false, false
	if len(fl.queue) == 0 {
		fl.after = ""
	}
	return true, nil
}

// read reads more of f and returns the complete lines in the buffer.
func (fl *Follower) read() (Chunk, bool, error) {
	small := min(idleBuffer, fl.cfg.BufferSize)
	for {
		switch {
		case fl.buf == nil && fl.full:
			// Busy the last time it was read: straight to large reads.
			fl.resize(fl.cfg.BufferSize)
		case fl.buf == nil:
			fl.resize(small)
		case fl.filled == len(fl.buf):
			if len(fl.buf) >= fl.cfg.MaxLine {
				// A line longer than MaxLine: hand it out in pieces.
				return fl.hand(fl.filled, false), true, nil
			}
			fl.resize(min(max(2*len(fl.buf), fl.cfg.BufferSize), fl.cfg.MaxLine))
		case (fl.full || fl.filled > len(fl.buf)/2) && len(fl.buf) < fl.cfg.BufferSize:
			// A busy file (the last read filled the buffer, or a long
			// line is pending): read in large blocks. After a hand-off
			// only a partial line is left, so "filled" alone would keep
			// a burst reading small blocks.
			fl.resize(fl.cfg.BufferSize)
		}
		n, err := fl.f.Read(fl.buf[fl.filled:])
		fl.full = n > 0 && fl.filled+n == len(fl.buf)
		fl.filled += n
		if err != nil && !errors.Is(err, io.EOF) {
			return Chunk{}, false, fmt.Errorf("reading %s: %w", fl.name, err)
		}
		if n > 0 && !fl.inCopy && len(fl.queue) == 0 {
			// copytruncate may have cut the file and written new content
			// past our offset before this read: then the bytes just read
			// are not the old content's. Checking the head after every
			// read (one small pread per large read) catches that before
			// anything is handed out; the copy has the real bytes.
			if match, err := fl.headMatches(false); err == nil && fl.sameInode() && !match {
				fl.filled -= n
				return Chunk{}, false, nil
			}
			// A young file's short fingerprint is ambiguous; extend it
			// (the head just matched, so this is still the same content).
			if fl.id.FPLen < filepos.FingerprintBytes && fl.off+int64(fl.filled) > int64(fl.id.FPLen) {
				if id, err := filepos.Identify(fl.f); err == nil && id.SameFile(fl.id) {
					fl.id = id
				}
			}
		}
		if n > 0 {
			if i := bytes.LastIndexByte(fl.buf[fl.filled-n:fl.filled], '\n'); i >= 0 {
				return fl.hand(fl.filled-n+i+1, false), true, nil
			}
			continue
		}
		// At the end of the file: a caught-up file (most of a node's)
		// holds no buffer, or a small one for a partial line; a busy one
		// borrows a large one again.
		switch {
		case fl.filled == 0:
			fl.release()
		case len(fl.buf) > small && fl.filled <= small/2:
			fl.resize(small)
		}
		return Chunk{}, false, nil
	}
}

// resize moves what buf holds to a borrowed buffer of n bytes and gives
// the old one back.
func (fl *Follower) resize(n int) {
	nb := fl.cfg.buffers.get(n, fl.cfg.BufferSize)
	copy(*nb, fl.buf[:fl.filled])
	fl.release()
	fl.bufp, fl.buf = nb, *nb
}

// release gives the buffer back to the pool.
func (fl *Follower) release() {
	if fl.bufp != nil {
		fl.cfg.buffers.put(fl.bufp, fl.cfg.BufferSize)
	}
	fl.bufp, fl.buf = nil, nil
}

func (fl *Follower) hand(n int, final bool) Chunk {
	fl.handed = n
	return Chunk{Path: fl.name, ID: fl.id, Start: fl.off, Data: fl.buf[:n], Final: final}
}

// finish hands out what is left of f as its final chunk and closes it.
func (fl *Follower) finish() Chunk {
	c := Chunk{Path: fl.name, ID: fl.id, Start: fl.off, Data: fl.buf[:fl.filled], Final: true}
	fl.handed = fl.filled
	fl.f.Close()
	fl.f = nil
	fl.held.Store(0)
	return c
}

// checkHold tracks a deleted file kept open and gives it up once it has
// been held longer than MaxHold, so a reader stuck behind (CloudWatch down
// for hours) cannot pin the disk space of deleted logs forever.
func (fl *Follower) checkHold() (Chunk, bool, error) {
	if err := fl.fstat(); err != nil {
		return Chunk{}, false, err
	}
	if fl.st.Nlink != 0 {
		fl.held.Store(0)
		return Chunk{}, false, nil
	}
	readTo := fl.off + int64(fl.filled)
	fl.held.Store(max(0, fl.st.Size-readTo))
	if fl.heldSince.IsZero() {
		fl.heldSince = fl.now()
		return Chunk{}, false, nil
	}
	if fl.now().Sub(fl.heldSince) <= fl.cfg.MaxHold {
		return Chunk{}, false, nil
	}
	fl.logger.Warn("giving up a deleted file held open too long; its unread lines are lost", "held_for", fl.cfg.MaxHold, "unread_bytes", fl.st.Size-readTo)
	fl.lost.Add(1)
	fl.queue = fl.queue[min(1, len(fl.queue)):]
	fl.inCopy = false
	return fl.finish(), true, nil
}

type eofAction int

const (
	waitMore eofAction = iota // nothing new: poll again later
	readMore                  // read again now
	handOut                   // return the chunk
)

// atEOF decides what the end of f means: wait for more, move on to a newer
// file, or read a copytruncate copy.
func (fl *Follower) atEOF() (Chunk, eofAction, error) {
	readTo := fl.off + int64(fl.filled)
	if len(fl.queue) > 0 {
		// A rotated file: it no longer grows.
		fl.after = fl.queue[0].Path
		fl.queue = fl.queue[1:]
		return fl.finish(), handOut, nil
	}
	if fl.inCopy {
		fl.inCopy = false
		fl.after = fl.name
		return fl.finish(), handOut, nil
	}
	if fl.rotated {
		fl.rotated = false
		fl.after = fl.rotatedName()
		return fl.finish(), handOut, nil
	}
	// Truncated (copytruncate) or overwritten from the start?
	if err := fl.fstat(); err != nil {
		return Chunk{}, waitMore, err
	}
	if match, err := fl.headMatches(true); err == nil && fl.sameInode() && (!match || fl.st.Size < readTo) {
		return fl.truncated(readTo)
	}
	err := syscall.Stat(fl.path, &fl.pathSt)
	switch {
	case err == nil && !filepos.StatInode(&fl.pathSt).SameFile(fl.id):
		// Renamed away and a new file is in place: the runtime writes to
		// the new one, so this one is complete once read to its end; read
		// once more to catch a write that landed between our read and the
		// stat.
		fl.logger.Debug("file rotated", "new_inode", fl.pathSt.Ino)
		fl.rotated = true
		return Chunk{}, readMore, nil
	case fl.draining.Load():
		fl.done = true
		return fl.finish(), handOut, nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return Chunk{}, waitMore, fmt.Errorf("stat %s: %w", fl.path, err)
	}
	// Extend a short fingerprint as the young file grows, so identity gets
	// stronger without changing for the same content.
	if fl.id.FPLen < filepos.FingerprintBytes && fl.st.Size > int64(fl.id.FPLen) {
		if id, err := filepos.Identify(fl.f); err == nil && id.SameFile(fl.id) {
			fl.id = id
		}
	}
	return Chunk{}, waitMore, nil
}

// fstat reads f's metadata into fl.st.
func (fl *Follower) fstat() error {
	if err := syscall.Fstat(int(fl.f.Fd()), &fl.st); err != nil {
		return &os.PathError{Op: "fstat", Path: fl.name, Err: err}
	}
	return nil
}

// sameInode reports whether f (as last fstat'ed) is id's inode; a
// copytruncate copy, read under the identity of the file it copies, is not.
func (fl *Follower) sameInode() bool { return filepos.StatInode(&fl.st).SameFile(fl.id) }

// headMatches reports whether f still starts with the bytes id was taken
// from, reading them only if f changed since they last matched. f must
// have been fstat'ed just before (fl.st). Skipping needs an unchanged
// size and ctime: truncating or writing changes both. ifChanged false
// always reads (after a read of new bytes, which changed the file anyway).
func (fl *Follower) headMatches(ifChanged bool) (bool, error) {
	at := fl.headAt
	at.id, at.ino, at.size, at.ctimeSec, at.ctimeNsec = fl.id, fl.st.Ino, fl.st.Size, fl.st.Ctim.Sec, fl.st.Ctim.Nsec
	if ifChanged && at == fl.headAt {
		return true, nil
	}
	match, err := fl.id.HeadMatches(fl.f, fl.head[:])
	if err != nil {
		return false, fmt.Errorf("fingerprinting %s: %w", fl.name, err)
	}
	if match && ifChanged {
		fl.headAt = at
	}
	return match, nil
}

// sameHead reports whether the file at name starts like id's file did.
func sameHead(name string, id filepos.Identity) bool {
	f, err := os.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	match, _, err := filepos.Matches(f, id)
	return err == nil && match
}

// rotatedName finds the name f was renamed to, by inode.
func (fl *Follower) rotatedName() string {
	for _, name := range rotatedFiles(filepath.Dir(fl.path), filepath.Base(fl.path)) {
		if fi, err := os.Stat(name); err == nil && filepos.Inode(fi).SameFile(fl.id) {
			return name
		}
	}
	fl.logger.Warn("rotated file not found under a rotated name; later rotations, if any, are skipped")
	return ""
}

// truncated handles copytruncate: the content up to readTo (and perhaps
// more) was copied to a sibling file before f was cut. The copy is found by
// its fingerprint and read from where we were to its end, under the old
// identity and offsets (it is the same content); then path is read from
// its start as a new file.
func (fl *Follower) truncated(readTo int64) (Chunk, eofAction, error) {
	old := fl.id
	var copyPath string
	for _, name := range rotatedFiles(filepath.Dir(fl.path), filepath.Base(fl.path)) {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		match, same, err := filepos.Matches(f, old)
		fi, serr := f.Stat()
		f.Close()
		if err == nil && serr == nil && match && !same && fi.Size() >= readTo {
			copyPath = name
		}
	}
	if copyPath == "" {
		fl.logger.Warn("file truncated and no copy found; lines written just before the truncation may be lost", "offset", readTo)
		return fl.finish(), handOut, nil
	}
	fl.logger.Debug("file truncated, reading the rest from its copy", "copy", copyPath, "offset", readTo)
	// Re-read the partial line we hold from the copy too.
	off := fl.off
	fl.f.Close()
	fl.f = nil
	if err := fl.openCopy(copyPath, old, off); err != nil {
		return Chunk{}, waitMore, err
	}
	fl.inCopy = true
	return Chunk{}, readMore, nil
}

func (fl *Follower) openCopy(path string, id filepos.Identity, off int64) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening copy %s: %w", path, err)
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("seeking copy %s: %w", path, err)
	}
	fl.f, fl.name, fl.id, fl.off, fl.filled, fl.handed = f, path, id, off, 0, 0
	fl.heldSince = time.Time{}
	return nil
}
