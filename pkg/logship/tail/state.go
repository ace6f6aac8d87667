package tail

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/nodekit/nodekit/pkg/logship/filepos"
)

// fileState is where a Follower is in its stream of files.
type fileState int

const (
	// between: no file is open; the next is the oldest queued rotated
	// file, else path (which may not exist yet, mid-rotation).
	between fileState = iota
	// live: path's current file. At its end it may grow, be renamed away
	// (renamed) or be cut by copytruncate (copied).
	live
	// older: a rotated file from the queue (queue[0]), older than path:
	// read to its end, then the next.
	older
	// renamed: the live file, seen renamed away while a new file took
	// its path: the runtime writes to the new one, so this one is read to
	// its end (once more, for a write that raced the rename), then the
	// next.
	renamed
	// copied: the copy copytruncate made of the live file, read under the
	// live file's identity from where the cut file was left: read to its
	// end, then path again from its start.
	copied
	// finished: drained and read to the end; Next returns io.EOF.
	finished
)

func (s fileState) String() string {
	switch s {
	case between:
		return "between"
	case live:
		return "live"
	case older:
		return "older"
	case renamed:
		return "renamed"
	case copied:
		return "copied"
	case finished:
		return "finished"
	}
	return fmt.Sprintf("fileState(%d)", int(s))
}

type eofAction int

const (
	waitMore eofAction = iota // nothing new: poll again later
	readMore                  // read again now
	handOut                   // return the chunk
)

// endFacts is what the end of the live file found (the other states do
// not look: their file no longer grows).
type endFacts struct {
	// truncated: the file was cut or overwritten from its start, keeping
	// its inode (copytruncate).
	truncated bool
	// renamedAway: path names another file now.
	renamedAway bool
	// draining: the container is gone; nothing more will be written.
	draining bool
}

// afterEnd is the state machine's one transition table: the state a
// Follower moves to at the end of its current file, and what it does then.
func afterEnd(s fileState, f endFacts) (fileState, eofAction) {
	switch s {
	case older, renamed, copied:
		// A file that no longer grows, read to its end: hand out the
		// rest; the next file comes after.
		return between, handOut
	case live:
		switch {
		case f.truncated:
			return copied, readMore
		case f.renamedAway:
			return renamed, readMore
		case f.draining:
			return finished, handOut
		}
	}
	return s, waitMore
}

// atEOF finds out what the end of f means and makes the transition.
func (fl *Follower) atEOF() (Chunk, eofAction, error) {
	readTo := fl.off + int64(fl.filled)
	var facts endFacts
	var statErr error
	if fl.state == live {
		if err := fl.fstat(); err != nil {
			return Chunk{}, waitMore, err
		}
		match, err := fl.headMatches(true)
		facts.truncated = err == nil && fl.sameInode() && (!match || fl.st.Size < readTo)
		if !facts.truncated {
			statErr = syscall.Stat(fl.path, &fl.pathSt)
			facts.renamedAway = statErr == nil && !filepos.StatInode(&fl.pathSt).SameFile(fl.id)
			facts.draining = fl.draining.Load()
		}
	}
	next, action := afterEnd(fl.state, facts)
	switch {
	case next == copied:
		return fl.truncated(readTo)
	case next == renamed:
		fl.logger.Debug("file rotated", "new_inode", fl.pathSt.Ino)
		fl.state = renamed
		return Chunk{}, readMore, nil
	case action == handOut:
		switch fl.state {
		case older:
			fl.after = fl.queue[0].Path
			fl.queue = fl.queue[1:]
		case copied:
			fl.after = fl.name
		case renamed:
			fl.after = fl.rotatedName()
		}
		c := fl.finish()
		fl.state = next
		return c, handOut, nil
	case statErr != nil && !errors.Is(statErr, os.ErrNotExist):
		return Chunk{}, waitMore, fmt.Errorf("stat %s: %w", fl.path, statErr)
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

// finish hands out what is left of f as its final chunk and closes it; the
// Follower is then between files.
func (fl *Follower) finish() Chunk {
	c := Chunk{Path: fl.name, ID: fl.id, Start: fl.off, Data: fl.buf[:fl.filled], Final: true}
	fl.handed = fl.filled
	fl.f.Close()
	fl.f = nil
	fl.state = between
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
	if fl.state == older {
		fl.queue = fl.queue[1:]
	}
	return fl.finish(), true, nil
}

// truncated handles copytruncate: the content up to readTo (and perhaps
// more) was copied to a sibling file before f was cut. The copy is found by
// its fingerprint and read from where we were to its end, under the old
// identity and offsets (it is the same content); then path is read from
// its start as a new file. Without a copy, what is left of f is handed out
// and path is read anew.
func (fl *Follower) truncated(readTo int64) (Chunk, eofAction, error) {
	old := fl.id
	copyPath := fl.findCopy(old, readTo)
	if copyPath == "" {
		fl.logger.Warn("file truncated and no copy found; lines written just before the truncation may be lost", "offset", readTo)
		return fl.finish(), handOut, nil
	}
	fl.logger.Debug("file truncated, reading the rest from its copy", "copy", copyPath, "offset", readTo)
	// Re-read the partial line we hold from the copy too.
	off := fl.off
	fl.f.Close()
	fl.f = nil
	fl.state = between
	if err := fl.openCopy(copyPath, old, off); err != nil {
		return Chunk{}, waitMore, err
	}
	return Chunk{}, readMore, nil
}
