package tail

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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

// Chunk is a run of complete lines read from one file: what tail hands to
// the parser.
type Chunk struct {
	Path string
	ID   filepos.Identity
	// Start is the file offset of Data[0].
	Start int64
	// Data holds whole lines, each ending in '\n' except, when Final is
	// set, possibly the last. It aliases the Follower's buffer and is valid
	// until the next call to Next, TryNext or Close (the buffer is then
	// given back to a pool other Followers borrow from).
	Data []byte
	// Final is set on the last chunk of a file that will not be read again
	// (rotated away and read to its end, or drained): the reader flushes
	// what it joins across lines.
	Final bool
}

// Follower reads one stream's log file path and the files it rotates to.
// Next and TryNext are called by one goroutine; Drain, Wake and HeldBytes
// may be called from any.
//
// Where it is in the stream is its state (see fileState): between files,
// in the live file, or finishing a file that no longer grows (an older
// rotated file, the live file renamed away, a copytruncate copy). The end
// of a file moves it on (afterEnd); a file deleted and held open too long
// is given up (checkHold).
type Follower struct {
	path   string
	cfg    Config
	logger *slog.Logger
	now    func() time.Time

	state fileState
	f     *os.File
	name  string // path f was opened as
	id    filepos.Identity
	off   int64 // offset of buf[0] in f
	// buf is borrowed from cfg.buffers (bufp is its holder) while there
	// is data to hand out or a partial line to keep, and nil otherwise:
	// a caught-up file holds no buffer.
	buf    []byte
	bufp   *[]byte
	filled int  // bytes of buf holding data
	full   bool // the last read filled buf: the file is busy
	handed int  // bytes of buf handed out by the last call

	// queue holds rotated files still to read before path, oldest first;
	// in state older, f is queue[0].
	queue []filepos.Position
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
	fl.Wake()
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
	c, _, err := fl.next(ctx, true)
	return c, err
}

// TryNext returns a chunk if the stream has one now, without waiting; ok
// is false when it has nothing new yet. After Drain, a finished stream
// returns io.EOF.
func (fl *Follower) TryNext() (c Chunk, ok bool, err error) {
	return fl.next(context.Background(), false)
}

// next is Next when wait is set and TryNext otherwise.
func (fl *Follower) next(ctx context.Context, wait bool) (Chunk, bool, error) {
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
		switch fl.state {
		case finished:
			return Chunk{}, false, io.EOF
		case between:
			opened, err := fl.openNext()
			if err != nil {
				return Chunk{}, false, err
			}
			if !opened {
				if fl.draining.Load() {
					fl.state = finished
					continue
				}
				if !wait {
					return Chunk{}, false, nil
				}
				if err := fl.sleep(ctx); err != nil {
					return Chunk{}, false, err
				}
				continue
			}
		}
		if c, ok, err := fl.checkHold(); err != nil || ok {
			fl.busy()
			return c, ok, err
		}
		// A caught-up file that has not grown is not read: reading would
		// borrow a buffer only to find nothing.
		if fl.buf != nil || fl.st.Size > fl.off {
			if c, ok, err := fl.read(); err != nil || ok {
				fl.busy()
				return c, ok, err
			}
		}
		// At the end of the file: find out what that means.
		c, action, err := fl.atEOF()
		if err != nil {
			return Chunk{}, false, err
		}
		switch action {
		case handOut:
			fl.busy()
			return c, true, nil
		case readMore:
			continue
		}
		if !wait {
			return Chunk{}, false, nil
		}
		if err := fl.sleep(ctx); err != nil {
			return Chunk{}, false, err
		}
	}
}

// busy notes that the file gave something: it is polled at the full rate
// again, and no longer watched (its writes would each queue an event).
func (fl *Follower) busy() {
	fl.quiet = 0
	if fl.notifier != nil {
		fl.notifier.unwatch(fl)
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
