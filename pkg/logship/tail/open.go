package tail

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/nodekit/nodekit/pkg/logship/filepos"
)

// resume works out which files to read, from where, to continue from pos,
// and opens them (the live file is left to openNext). It returns the loss
// when the saved file is gone.
func (fl *Follower) resume(pos filepos.Position, rotated []string) []Loss {
	if f, err := os.Open(fl.path); err == nil {
		match, same, err := filepos.Matches(f, pos.ID)
		f.Close()
		if err == nil && match && same {
			fl.startOff = pos.Offset
			return nil
		}
	}
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
		fl.logger.Info("resuming from a rotated file", "rotated", name, "offset", pos.Offset, "then", len(rotated)-i-1)
		var losses []Loss
		if l, ok := fl.hold(name, pos.Offset); !ok {
			losses = append(losses, l)
		}
		for _, newer := range rotated[i+1:] {
			if l, ok := fl.hold(newer, 0); !ok {
				losses = append(losses, l)
			}
		}
		return losses
	}
	fl.logger.Warn("saved file is gone (compressed or deleted); lines written to it after the saved offset are lost, uncounted", "saved_path", pos.Path, "offset", pos.Offset)
	return []Loss{{Path: pos.Path, Reason: LostUnopened}}
}

// hold opens name and queues it to be read from start. It reports the loss
// when the file is gone.
func (fl *Follower) hold(name string, start int64) (Loss, bool) {
	f, err := os.Open(name)
	if err != nil {
		fl.logger.Warn("rotated file vanished before it was opened; its lines are lost, uncounted", "rotated", name, "err", err)
		return Loss{Path: name, Reason: LostUnopened}, false
	}
	id, err := filepos.Identify(f)
	if err != nil {
		f.Close()
		fl.logger.Warn("rotated file unreadable; its lines are lost, uncounted", "rotated", name, "err", err)
		return Loss{Path: name, Reason: LostUnopened}, false
	}
	fl.queue = append(fl.queue, &heldFile{f: f, name: name, id: id, start: start})
	return Loss{}, true
}

// holds reports whether ino is f's or a queued file's inode.
func (fl *Follower) holds(ino filepos.Identity) bool {
	if fl.f != nil && ino.SameFile(fl.id) {
		return true
	}
	for _, h := range fl.queue {
		if ino.SameFile(h.id) {
			return true
		}
	}
	return false
}

// catch opens the file at path if the Follower does not hold it yet (a
// rotation put it there), and queues it after every file held: the
// runtime writes there now. It is called at the end of the live file and,
// for a Follower busy elsewhere, by its Keeper, so each file is held from
// the moment it is seen: once held it is read to its end, whatever the
// kubelet does to its name. fl.mu must be held.
func (fl *Follower) catch() error {
	if err := syscall.Stat(fl.path, &fl.pathSt); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil // mid-rotation or container gone: wait for either
		}
		return &os.PathError{Op: "stat", Path: fl.path, Err: err}
	}
	if fl.holds(filepos.StatInode(&fl.pathSt)) {
		return nil
	}
	f, err := os.Open(fl.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("opening log file %s: %w", fl.path, err)
	}
	id, err := filepos.Identify(f)
	if err != nil {
		f.Close()
		return err
	}
	if fl.holds(id) { // renamed and replaced between stat and open
		f.Close()
		return nil
	}
	fl.queue = append(fl.queue, &heldFile{f: f, name: fl.path, id: id, start: fl.startOff})
	fl.startOff = 0
	// A new file at path means a rotation: if the Keeper's looks were
	// too far apart (a CPU-throttled logship), a file was live and
	// renamed away between two of them. It is still a plain rotated file
	// now, and only for one more rotation: hold it now, in its place.
	fl.missed = true
	fl.catchMissed()
	fl.logger.Debug("holding a new file", "id", id, "queue", len(fl.queue))
	return nil
}

// catchMissed is a safety net for a Follower without a Keeper (or one
// starved of CPU), used once a file is finished and whenever a new file
// is held: files rotated away since the last one seen that were never seen
// at path are still plain rotated files (the kubelet compresses a rotated
// file only at the next rotation).
// They are held, in the order of their names among the files held (the
// one at path last, deleted ones first). Rotated copies of the content at
// path (copytruncate) are not: their lines come from there.
func (fl *Follower) catchMissed() {
	if !fl.missed {
		return
	}
	fl.missed = false
	after := fl.seen
	type placed struct {
		h   *heldFile
		key string
	}
	var pathSt syscall.Stat_t
	atPath := syscall.Stat(fl.path, &pathSt) == nil
	var live filepos.Identity
	files := make([]placed, 0, len(fl.queue)+1)
	for _, h := range fl.queue {
		p := placed{h, ""}
		if atPath && filepos.StatInode(&pathSt).SameFile(h.id) {
			p.key, live = "\xff", h.id
		}
		files = append(files, p)
	}
	var st syscall.Stat_t
	missed := false
	for _, name := range rotatedFiles(filepath.Dir(fl.path), filepath.Base(fl.path)) {
		if name <= after || syscall.Stat(name, &st) != nil {
			continue
		}
		fl.seen = name
		ino := filepos.StatInode(&st)
		if i := slices.IndexFunc(files, func(p placed) bool { return ino.SameFile(p.h.id) }); i >= 0 {
			files[i].key = name
			continue
		}
		if (fl.f != nil && ino.SameFile(fl.id)) || (live.FPLen > 0 && sameHead(name, live)) {
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		id, err := filepos.Identify(f)
		if err != nil {
			f.Close()
			continue
		}
		fl.logger.Debug("holding a rotated file never seen at path", "rotated", name)
		files = append(files, placed{&heldFile{f: f, name: name, id: id}, name})
		missed = true
	}
	if !missed {
		return
	}
	slices.SortStableFunc(files, func(a, b placed) int { return strings.Compare(a.key, b.key) })
	fl.queue = fl.queue[:0]
	for _, p := range files {
		fl.queue = append(fl.queue, p.h)
	}
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

// openNext makes the oldest held file f, holding path first if nothing
// else is (state live when it is the newest, older otherwise). It reports
// false, staying between files, when there is none to open yet.
func (fl *Follower) openNext() (bool, error) {
	if len(fl.queue) == 0 {
		if err := fl.catch(); err != nil {
			return false, err
		}
		if len(fl.queue) == 0 {
			return false, nil
		}
	} else {
		fl.catchMissed()
	}
	h := fl.queue[0]
	fl.queue[0] = nil
	fl.queue = fl.queue[1:]
	state := older
	if len(fl.queue) == 0 {
		state = live
	}
	off := h.start
	if fi, err := h.f.Stat(); err == nil && off > fi.Size() {
		off = 0
	}
	if _, err := h.f.Seek(off, io.SeekStart); err != nil {
		h.f.Close()
		return false, fmt.Errorf("seeking %s to %d: %w", h.name, off, err)
	}
	fl.logger.Debug("opened", "name", h.name, "offset", off, "id", h.id, "queue", len(fl.queue))
	fl.f, fl.name, fl.id, fl.off, fl.filled, fl.handed = h.f, h.name, h.id, off, 0, 0
	fl.state, fl.deletedAt = state, h.deletedAt
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
	fl.state = copied
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

// noteRotatedName notes the name f was renamed to, found by inode, as seen: a
// file rotated later sorts after it. A file deleted already has none.
func (fl *Follower) noteRotatedName() {
	for _, name := range rotatedFiles(filepath.Dir(fl.path), filepath.Base(fl.path)) {
		if fi, err := os.Stat(name); err == nil && filepos.Inode(fi).SameFile(fl.id) {
			fl.seen = max(fl.seen, name)
			return
		}
	}
}
