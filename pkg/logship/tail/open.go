package tail

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nodekit/nodekit/pkg/logship/filepos"
)

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

// openNext opens the next queued file (state older), or path itself
// (state live). It reports false, staying between files, when there is
// none to open yet.
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
	state := live
	if len(fl.queue) > 0 {
		pos, state = fl.queue[0], older
	}
	if f == nil {
		f, err = os.Open(pos.Path)
	}
	if err != nil {
		if state == older {
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
	if state == live {
		fl.startOff = 0
		fl.after = ""
	}
	fl.logger.Debug("opened", "name", pos.Path, "offset", off, "id", id, "queue", len(fl.queue))
	fl.f, fl.name, fl.id, fl.off, fl.filled, fl.handed = f, pos.Path, id, off, 0, 0
	fl.state, fl.heldSince = state, time.Time{}
	return true, nil
}

// findCopy looks for the copytruncate copy of the file old names, holding
// at least its first readTo bytes: a rotated sibling with old's head and
// another inode.
func (fl *Follower) findCopy(old filepos.Identity, readTo int64) string {
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
	return copyPath
}

// openCopy starts reading the copy at path from off, under id (state
// copied).
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
	fl.state, fl.heldSince = copied, time.Time{}
	return nil
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
