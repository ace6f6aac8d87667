package podstats

import (
	"bytes"
	"encoding/binary"
	"os"

	"golang.org/x/sys/unix"
)

// listDir calls fn with the name of every subdirectory of dir (and of
// entries whose type the filesystem does not report), reading the
// directory with getdents(2) into buf, which it returns, possibly grown.
// The name is only valid during the call. Unlike os.ReadDir it allocates
// nothing per entry: kubepods holds some forty cgroup files next to the
// pods, listed on every scrape.
func listDir(dir string, buf []byte, fn func(name []byte)) ([]byte, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return buf, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	if cap(buf) < 8192 {
		buf = make([]byte, 8192)
	}
	buf = buf[:cap(buf)]
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return buf, &os.PathError{Op: "getdents", Path: dir, Err: err}
		}
		if n <= 0 {
			return buf, nil
		}
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				break // malformed: never index past the record
			}
			typ, name := b[18], b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if (typ == unix.DT_DIR || typ == unix.DT_UNKNOWN) && !(len(name) > 0 && name[0] == '.') {
				fn(name)
			}
			b = b[reclen:]
		}
	}
}
