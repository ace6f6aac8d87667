package tail

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/nodekit/nodekit/pkg/logship/filepos"
)

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
				return fl.hand(fl.filled), true, nil
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
		if n > 0 && (fl.state == live || fl.state == renamed) {
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
				return fl.hand(fl.filled - n + i + 1), true, nil
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

// hand hands out the first n bytes of the buffer.
func (fl *Follower) hand(n int) Chunk {
	fl.handed = n
	return Chunk{Path: fl.name, ID: fl.id, Start: fl.off, Data: fl.buf[:n]}
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
