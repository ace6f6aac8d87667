package tail

import (
	"fmt"
	"time"

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
	// released: the Keeper let go of f (deleted, and held beyond its
	// bounds) and counted what was left unread; the next call hands out
	// the file's empty final chunk, and then the next file.
	released
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
	case released:
		return "released"
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
	// draining: the container is gone and its file unwritten for
	// Config.RotateWait; nothing more will be written.
	draining bool
	// settling (a renamed or older file): it was written less than
	// Config.RotateWait ago and a newer file is held. The runtime keeps
	// writing to a file after the new one appeared at its path, and even
	// after it wrote to the new one: containerd switches stdout and
	// stderr one after the other, and each old stream's writer drains
	// what its pipe still holds into the old file before closing it.
	settling bool
}

// afterEnd is the state machine's one transition table: the state a
// Follower moves to at the end of its current file, and what it does then.
func afterEnd(s fileState, f endFacts) (fileState, eofAction) {
	switch s {
	case older, renamed:
		// A file that no longer grows, read to its end: hand out the
		// rest; the next file comes after. Unless the runtime may not
		// have switched to the next file yet: look again later.
		if f.settling {
			return s, waitMore
		}
		return between, handOut
	case copied:
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
	if fl.state == live {
		if err := fl.fstat(); err != nil {
			return Chunk{}, waitMore, err
		}
		match, err := fl.headMatches(true)
		facts.truncated = err == nil && fl.sameInode() && (!match || fl.st.Size < readTo)
		if !facts.truncated {
			// A file newer than f is held (the Keeper opened it, or
			// catch does now): the runtime writes there.
			if err := fl.catch(); err != nil {
				return Chunk{}, waitMore, err
			}
			facts.renamedAway = len(fl.queue) > 0
			// The runtime may still be writing what the container's
			// pipe held when it exited: the file is done once it has
			// gone RotateWait without a write.
			facts.draining = fl.draining.Load() && fl.now().Sub(time.Unix(fl.st.Mtim.Unix())) >= fl.cfg.RotateWait
		}
	}
	if fl.state == older || fl.state == renamed {
		settling, err := fl.settling()
		if err != nil {
			return Chunk{}, waitMore, err
		}
		facts.settling = settling
	}
	next, action := afterEnd(fl.state, facts)
	switch {
	case next == copied:
		return fl.truncated(readTo)
	case next == renamed && fl.state == live:
		fl.logger.Debug("file rotated", "new_inode", fl.queue[0].id.Ino)
		fl.state = renamed
		return Chunk{}, readMore, nil
	case action == handOut:
		switch fl.state {
		case copied:
			fl.seen = max(fl.seen, fl.name)
		case older, renamed:
			fl.noteRotatedName()
		}
		fl.missed = true
		continued := fl.state != live
		c := fl.finish()
		c.Continued = continued
		fl.state = next
		return c, handOut, nil
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
	fl.deletedAt = time.Time{}
	return c
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
	fl.deletedAt = time.Time{}
	if err := fl.openCopy(copyPath, old, off); err != nil {
		return Chunk{}, waitMore, err
	}
	return Chunk{}, readMore, nil
}

// settling reports whether f, followed by a newer file, was written less
// than Config.RotateWait ago (endFacts.settling).
func (fl *Follower) settling() (bool, error) {
	if len(fl.queue) == 0 || fl.cfg.RotateWait <= 0 {
		return false, nil
	}
	if err := fl.fstat(); err != nil {
		return false, err
	}
	return fl.now().Sub(time.Unix(fl.st.Mtim.Unix())) < fl.cfg.RotateWait, nil
}
