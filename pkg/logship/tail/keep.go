package tail

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Keeper holds on to every file of the Followers it keeps, and bounds what
// that costs the node's disk.
//
// The kubelet renames a container's 0.log away, later compresses the
// renamed file and deletes it, and deletes old compressed ones: a reader
// that falls behind (CPU-throttled, or paused while CloudWatch Logs is
// away) would find its next files gone. So every PollInterval the Keeper
// looks at the path of each Follower that is not waiting at the end of its
// live file and opens any new file there (Follower.catch): from then on the
// Follower reads it to its end even after the kubelet deleted it, because
// the open file keeps its data.
//
// Deleted files held open take disk space the kernel cannot free. The
// Keeper lets go of them when they pass the bounds (Config.MaxDeletedBytes
// across all its Followers, the files written longest ago first; MaxHold
// for any one), and reports exactly what was never read, in bytes and
// lines, to the Follower's Config.OnLoss.
type Keeper struct {
	cfg    Config
	logger *slog.Logger
	now    func() time.Time

	mu  sync.Mutex
	fls map[*Follower]struct{}
	// deleted is the disk space of the deleted files held, at the last
	// pass.
	deleted atomic.Int64
}

// NewKeeper returns a Keeper bounded by cfg's MaxDeletedBytes and
// MaxHold, looking every cfg.PollInterval; Run makes it work.
func NewKeeper(cfg Config, logger *slog.Logger) *Keeper {
	return &Keeper{cfg: cfg, logger: logger, now: time.Now, fls: map[*Follower]struct{}{}}
}

// Keep makes k hold fl's files until the returned function is called.
func (k *Keeper) Keep(fl *Follower) (forget func()) {
	k.mu.Lock()
	k.fls[fl] = struct{}{}
	k.mu.Unlock()
	return func() {
		k.mu.Lock()
		delete(k.fls, fl)
		k.mu.Unlock()
	}
}

// DeletedBytes is the disk space of the deleted files the Keeper's
// Followers hold open (what MaxDeletedBytes bounds), at the last look.
func (k *Keeper) DeletedBytes() int64 { return k.deleted.Load() }

// Run looks after the Followers until ctx ends.
func (k *Keeper) Run(ctx context.Context) error {
	t := time.NewTicker(k.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			k.pass()
		}
	}
}

// deletedFile is a deleted file a Follower holds.
type deletedFile struct {
	fl        *Follower
	f         *os.File
	size      int64
	mtime     int64 // Unix ns: when it was last written
	deletedAt time.Time
}

// pass holds the new files at every busy Follower's path and lets go of
// deleted files beyond the bounds.
func (k *Keeper) pass() {
	now := k.now()
	k.mu.Lock()
	fls := make([]*Follower, 0, len(k.fls))
	for fl := range k.fls {
		fls = append(fls, fl)
	}
	k.mu.Unlock()
	var deleted []deletedFile
	var total int64
	for _, fl := range fls {
		if fl.idle.Load() {
			continue
		}
		d := fl.survey(now)
		for _, f := range d {
			total += f.size
		}
		deleted = append(deleted, d...)
	}
	// Oldest writes first: they are what the reader would get to first
	// anyway, and the newest lines are the ones most worth keeping.
	slices.SortFunc(deleted, func(a, b deletedFile) int { return int(min(max(a.mtime-b.mtime, -1), 1)) })
	for _, d := range deleted {
		var reason LossReason
		switch {
		case k.cfg.MaxHold > 0 && now.Sub(d.deletedAt) > k.cfg.MaxHold:
			reason = LostHeldTime
		case k.cfg.MaxDeletedBytes > 0 && total > k.cfg.MaxDeletedBytes:
			reason = LostHeldBytes
		default:
			continue
		}
		if l, ok := d.fl.letGo(d.f, reason); ok {
			total -= d.size
			d.fl.report([]Loss{l})
		}
	}
	k.deleted.Store(total)
}

// survey holds a new file at path, if there is one, and lists the deleted
// files held, measuring the unread bytes in them for HeldBytes.
func (fl *Follower) survey(now time.Time) []deletedFile {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.state == finished || fl.closed {
		fl.held.Store(0)
		return nil
	}
	queued := len(fl.queue)
	if err := fl.catch(); err != nil {
		fl.logger.Debug("looking for a new file failed; trying again", "err", err)
	}
	if len(fl.queue) > queued && (fl.state == between || fl.state == live) {
		fl.Wake()
	}
	var out []deletedFile
	var unread int64
	var st syscall.Stat_t
	check := func(f *os.File, from int64, deletedAt *time.Time) {
		if syscall.Fstat(int(f.Fd()), &st) != nil || st.Nlink != 0 {
			return
		}
		if deletedAt.IsZero() {
			*deletedAt = now
		}
		unread += max(0, st.Size-from)
		out = append(out, deletedFile{fl: fl, f: f, size: st.Size, mtime: st.Mtim.Nano(), deletedAt: *deletedAt})
	}
	if fl.f != nil && fl.state != released {
		check(fl.f, fl.off+int64(fl.handed), &fl.deletedAt)
	}
	for _, h := range fl.queue {
		check(h.f, h.start, &h.deletedAt)
	}
	fl.held.Store(unread)
	return out
}

// letGo closes f, a deleted file fl holds, and returns what was never read
// of it; ok is false when fl no longer holds f (read to its end meanwhile).
// The current file's end is handed out by the next call to Next (state
// released) for the reader to flush what it joins across lines.
func (fl *Follower) letGo(f *os.File, reason LossReason) (Loss, bool) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	var from int64
	var name string
	switch i := slices.IndexFunc(fl.queue, func(h *heldFile) bool { return h.f == f }); {
	case fl.f == f && fl.state != released:
		// What was handed out is the reader's; the rest of the buffer
		// (a partial line) was read but never handed out: lost too.
		from, name = fl.off+int64(fl.handed), fl.name
	case i >= 0:
		from, name = fl.queue[i].start, fl.queue[i].name
		fl.queue = slices.Delete(fl.queue, i, i+1)
	default:
		return Loss{}, false
	}
	l := Loss{Path: name, Reason: reason, Counted: true}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err == nil && st.Size > from {
		l.Bytes = st.Size - from
		var err error
		if l.Lines, err = fl.countLines(f, from, st.Size); err != nil {
			l.Counted = false
			fl.logger.Warn("counting the lines of a file given up failed; its loss is reported uncounted", "name", name, "err", err)
		}
	}
	f.Close()
	if fl.f == f {
		fl.f = nil
		fl.releasedEnd = Chunk{Path: fl.name, ID: fl.id, Start: from + l.Bytes, Final: true}
		fl.state = released
		fl.deletedAt = time.Time{}
		fl.Wake()
	}
	fl.logger.Warn("let go of a deleted log file before it was read to its end; its unread lines are lost",
		"name", name, "reason", reason, "lost_bytes", l.Bytes, "lost_lines", l.Lines)
	return l, true
}

// countLines counts the lines in f's bytes [from, to) as cfg.CountLines
// does, reading whole lines into a buffer of its own (a line longer than
// MaxLine counts in pieces, as the Follower hands it out).
func (fl *Follower) countLines(f *os.File, from, to int64) (int64, error) {
	count := fl.cfg.CountLines
	if count == nil {
		count = countNewlines
	}
	bp := fl.cfg.buffers.get(fl.cfg.BufferSize, fl.cfg.BufferSize)
	defer func() { fl.cfg.buffers.put(bp, fl.cfg.BufferSize) }()
	buf := *bp
	var lines int64
	filled := 0
	for off := from; off < to; {
		if filled == len(buf) {
			if len(buf) >= fl.cfg.MaxLine {
				lines += int64(count(buf[:filled]))
				filled = 0
			} else {
				nb := make([]byte, min(2*len(buf), fl.cfg.MaxLine))
				copy(nb, buf[:filled])
				buf = nb
			}
		}
		n, err := f.ReadAt(buf[filled:min(len(buf), filled+int(to-off))], off)
		if err != nil && err != io.EOF {
			return lines, fmt.Errorf("reading %s at %d: %w", f.Name(), off, err)
		}
		if n == 0 {
			break // shorter than it was: nothing more to count
		}
		off += int64(n)
		filled += n
		if i := bytes.LastIndexByte(buf[:filled], '\n'); i >= 0 {
			lines += int64(count(buf[:i+1]))
			filled = copy(buf, buf[i+1:filled])
		}
	}
	if filled > 0 {
		lines += int64(count(buf[:filled]))
	}
	return lines, nil
}

// countNewlines counts physical lines, the last perhaps unterminated.
func countNewlines(data []byte) int {
	n := 0
	for _, b := range data {
		if b == '\n' {
			n++
		}
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		n++
	}
	return n
}
