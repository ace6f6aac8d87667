package collector

import (
	"bytes"
	"encoding/binary"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// anyEntry reports whether dir holds an entry for which match is true
// (match sees names without "." and ".."), reading it with getdents(2) into a pooled
// buffer. Collectors of hardware most nodes lack (thermal zones, XFS,
// Btrfs, watchdogs, power supplies) ask it before handing the directory to
// procfs, whose os.ReadDir and filepath.Glob cost six to ten system calls
// and a dozen allocations even for an empty directory: a fifth of the
// CPU those collectors took on this machine's scrapes, found empty on
// almost every node. A missing dir is reported as the open's error.
func anyEntry(dir string, match func(name []byte) bool) (bool, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	bp := direntBufs.Get().(*[]byte)
	defer direntBufs.Put(bp)
	buf := *bp
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, &os.PathError{Op: "getdents", Path: dir, Err: err}
		}
		if n <= 0 {
			return false, nil
		}
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				break // malformed: never index past the record
			}
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if string(name) != "." && string(name) != ".." && match(name) {
				return true, nil
			}
			b = b[reclen:]
		}
	}
}

var direntBufs = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// prefixed returns a match for anyEntry: names starting with one of the
// prefixes.
func prefixed(prefixes ...string) func([]byte) bool {
	return func(name []byte) bool {
		for _, p := range prefixes {
			if bytes.HasPrefix(name, []byte(p)) {
				return true
			}
		}
		return false
	}
}

// except returns a match for anyEntry: names other than these.
func except(names ...string) func([]byte) bool {
	return func(name []byte) bool {
		for _, n := range names {
			if string(name) == n {
				return false
			}
		}
		return true
	}
}
