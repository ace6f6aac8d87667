package tail

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
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
	// containers that rarely log, and each check wakes the process. The
	// Keeper looks for new files at every path it keeps this often too.
	PollInterval time.Duration
	// BufferSize is the read size; large reads keep syscalls per byte low.
	BufferSize int
	// RotateWait is how long a rotated file must have gone unwritten
	// before the Follower, at its end, moves on to the next file (as
	// fluent-bit's Rotate_Wait): the runtime still writes a few lines to
	// a file after the kubelet renamed it and a new one took its path.
	RotateWait time.Duration
	// MaxLine bounds a line's length; a longer run without a newline is
	// handed out in pieces (the parser then sees several lines).
	MaxLine int
	// MaxHold bounds how long a Keeper keeps a deleted file open to be
	// read; after that the file is let go and its unread bytes and lines
	// are reported as a Loss, so a stuck reader cannot pin disk space
	// forever.
	MaxHold time.Duration
	// MaxDeletedBytes bounds the disk space of the deleted files a Keeper
	// keeps open across all its Followers (the space the kernel cannot free
	// while they are held); above it the files written longest ago are let
	// go first, each reported as a Loss. 0: no bound but MaxHold.
	MaxDeletedBytes int64
	// CountLines counts the log lines in data, whole physical lines (the
	// last one perhaps without its newline), the way the reader counts the
	// lines it ships; a Loss reports lines with it. Nil counts physical
	// lines.
	CountLines func(data []byte) int
	// OnLoss, if set, is told of every file given up before it was read
	// to its end. It may be called from the Keeper's goroutine or from
	// Open, never with a Follower's lock held.
	OnLoss func(Loss)

	// buffers lends read buffers; DefaultConfig's is shared by every
	// Follower opened with a copy of it, and a Config without one gets
	// a pool of its own at Open.
	buffers *bufferPool
}

// DefaultConfig is what logship uses.
func DefaultConfig() Config {
	return Config{PollInterval: 250 * time.Millisecond, BufferSize: 256 << 10, MaxLine: 4 << 20, RotateWait: 2 * time.Second, MaxHold: 10 * time.Minute,
		MaxDeletedBytes: 512 << 20, buffers: new(bufferPool)}
}

// LossReason says why a file was given up before it was read to its end.
type LossReason string

const (
	// LostHeldBytes: the file was deleted and the deleted files held open
	// passed MaxDeletedBytes; it was among the oldest.
	LostHeldBytes LossReason = "held_bytes"
	// LostHeldTime: the file was deleted and held open longer than MaxHold.
	LostHeldTime LossReason = "held_time"
	// LostUnopened: the file was gone (compressed and deleted) before it
	// could be opened, e.g. rotated away while logship was not running:
	// what it held is unknown, Bytes and Lines are 0.
	LostUnopened LossReason = "unopened"
)

// Loss is a file given up before it was read to its end.
type Loss struct {
	// Path is the file's name when it was opened (it may have been
	// renamed and deleted since).
	Path   string
	Reason LossReason
	// Bytes and Lines are what was never read (Lines as
	// Config.CountLines counts them); exact unless Counted is false.
	Bytes, Lines int64
	Counted      bool
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
	// Continued is set on a Final chunk when the next file continues this
	// one (a rotation, not the stream's end or a file let go): containerd
	// splits the line it is writing when it reopens its log, the head as
	// a partial line at the end of the old file and the rest at the start
	// of the new one, so the reader joins across them.
	Continued bool
}

// Follower reads one stream's log file path and the files it rotates to.
// Next and TryNext are called by one goroutine; Drain, Wake and HeldBytes
// may be called from any, and a Keeper works on it from its own.
//
// Where it is in the stream is its state (see fileState): between files,
// in the live file, or finishing a file that no longer grows (an older
// rotated file, the live file renamed away, a copytruncate copy). The end
// of a file moves it on (afterEnd). Every file that appears at path is
// opened as soon as it is seen (catch) and held, in order, until it is
// read: a file the kubelet compresses and deletes behind a slow reader is
// still read to its end, unless a Keeper lets it go (released).
type Follower struct {
	path   string
	cfg    Config
	logger *slog.Logger
	now    func() time.Time

	// mu guards the files (f, queue, what describes f, the buffer's
	// bookkeeping) against the Keeper, which opens new files and lets
	// deleted ones go from its own goroutine. next holds it but while it
	// sleeps.
	mu    sync.Mutex
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
	// deletedAt is when f was first seen deleted (zero: not seen so).
	deletedAt time.Time
	// releasedEnd is the chunk handed out in state released: the empty
	// final chunk of the file the Keeper let go.
	releasedEnd Chunk
	// closed is set by Close.
	closed bool

	// queue holds the files opened and still to read after f, oldest
	// first: rotated files found at Open, and each file seen at path
	// since (the newest is the live one).
	queue []*heldFile
	// startOff is where to start in path the first time it is opened.
	startOff int64
	// seen is the greatest rotated name of a file read, held or skipped
	// on purpose: a plain rotated file sorting after it that is not held
	// was never seen at path, and is read in its place (a safety net:
	// see catchMissed, which looks when missed is set, after a file is
	// finished).
	seen   string
	missed bool

	// quiet counts the polls in a row that found nothing new.
	quiet int
	// notifier, when set, wakes the Follower while it is quiet; watched
	// says it does now.
	notifier *Notifier
	watched  atomic.Bool
	// idle says the Follower waits at the end of the live file with no
	// newer file held: it checks path itself at every poll, and holds no
	// deleted bytes unread, so the Keeper leaves it alone.
	idle atomic.Bool

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
	held     atomic.Int64 // unread bytes of deleted files held open
}

// heldFile is a file opened and waiting to be read.
type heldFile struct {
	f    *os.File
	name string // as opened
	id   filepos.Identity
	// start is where reading begins (a resumed position, else 0).
	start int64
	// deletedAt is when the file was first seen deleted.
	deletedAt time.Time
}

// Open starts following path. With a saved position the Follower resumes
// there: if the saved file was rotated since, it is found by identity in
// path's directory and read to its end first, followed by any newer rotated
// file, so a restart loses nothing the kubelet has not compressed yet.
// Every file to read is opened now; a saved file that is gone is reported
// to cfg.OnLoss.
func Open(path string, from *filepos.Position, cfg Config, logger *slog.Logger) (*Follower, error) {
	if cfg.BufferSize <= 0 || cfg.PollInterval <= 0 || cfg.MaxLine < cfg.BufferSize {
		return nil, fmt.Errorf("invalid tail config for %s: %+v", path, cfg)
	}
	if cfg.buffers == nil {
		cfg.buffers = new(bufferPool)
	}
	fl := &Follower{path: path, cfg: cfg, logger: logger.With("path", path), now: time.Now, wake: make(chan struct{}, 1)}
	var losses []Loss
	rotated := rotatedFiles(filepath.Dir(path), filepath.Base(path))
	if len(rotated) > 0 {
		fl.seen = rotated[len(rotated)-1]
	}
	if from != nil {
		losses = fl.resume(*from, rotated)
	} else {
		// A stream seen for the first time: anything already rotated
		// away is older than path and read first, so a rotation before
		// logship got to the file (or while it was not running) loses
		// nothing.
		for _, name := range rotated {
			if l, ok := fl.hold(name, 0); !ok {
				losses = append(losses, l)
			}
		}
	}
	fl.report(losses)
	// Open now rather than at the first Next, so that a rotation between
	// Open and Next is followed rather than skipped.
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if _, err := fl.openNext(); err != nil {
		fl.closeAll()
		return nil, err
	}
	return fl, nil
}

// report tells cfg.OnLoss of losses; fl.mu must not be held.
func (fl *Follower) report(losses []Loss) {
	if fl.cfg.OnLoss == nil {
		return
	}
	for _, l := range losses {
		fl.cfg.OnLoss(l)
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
	fl.Wake()
}

// HeldBytes is the number of unread bytes in deleted files kept open, as
// the Keeper last measured them.
func (fl *Follower) HeldBytes() int64 { return fl.held.Load() }

// Close releases the open files and the read buffer.
func (fl *Follower) Close() error {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	// A Keeper's look under way must not open files for it any more.
	fl.closed = true
	return fl.closeAll()
}

func (fl *Follower) closeAll() error {
	fl.release()
	for _, h := range fl.queue {
		h.f.Close()
	}
	fl.queue = nil
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
	fl.mu.Lock()
	defer fl.mu.Unlock()
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
		case released:
			// What was read of the file and not handed out (a partial
			// line) went with it.
			fl.filled = 0
			fl.release()
			fl.state = between
			fl.busy()
			return fl.releasedEnd, true, nil
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
		if err := fl.fstat(); err != nil {
			return Chunk{}, false, err
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

// sleep waits for the next poll with fl.mu released, so that the Keeper
// can work meanwhile.
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
	if fl.state == live && len(fl.queue) == 0 {
		// At the end of the live file: nothing is held unread.
		fl.held.Store(0)
		fl.idle.Store(true)
	}
	fl.mu.Unlock()
	defer func() {
		fl.mu.Lock()
		fl.idle.Store(false)
	}()
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
