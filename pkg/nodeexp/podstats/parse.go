package podstats

import (
	"bytes"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// dirReader reads small files of one cgroup directory with raw openat(2),
// read(2) and close(2) into a reused buffer: os.ReadFile also calls fstat,
// tries to register the fd with the poller and reads once more for EOF,
// which more than doubles the syscalls of a 100-pod scrape.
type dirReader struct {
	fd  int
	buf []byte
}

// openDir opens a cgroup directory; buf is reused for its files (one
// scrape passes the same buffer to every pod).
func openDir(path string, buf []byte) (*dirReader, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return &dirReader{fd: fd, buf: buf[:0]}, nil
}

func (d *dirReader) close() { unix.Close(d.fd) }

// read returns the content of name, valid until the next read.
func (d *dirReader) read(name string) ([]byte, bool) {
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false
	}
	defer unix.Close(fd)
	b := d.buf[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, false
		}
		b = b[:len(b)+n]
		// cgroup files are produced whole by one read when the buffer is
		// large enough; only a full buffer needs another read.
		if n == 0 || len(b) < cap(b) {
			break
		}
	}
	d.buf = b
	return b, true
}

// keyValues holds a flat-keyed cgroup file ("key value" per line:
// cpu.stat, memory.stat, memory.events, memory.oom_control).
type keyValues struct {
	buf []byte
}

func (kv *keyValues) set(b []byte, ok bool) bool {
	kv.buf = b
	return ok
}

func (kv *keyValues) get(key string) (float64, bool) {
	b := kv.buf
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		k, v, ok := bytes.Cut(line, []byte{' '})
		if !ok || string(k) != key {
			continue
		}
		f, err := strconv.ParseFloat(string(bytes.TrimSpace(v)), 64)
		return f, err == nil
	}
	return 0, false
}

func parseFloat(b []byte, ok bool) (float64, bool) {
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(bytes.TrimSpace(b)), 64) // "max" fails here too
	return f, err == nil
}

// readIOStatV2 sums rbytes and wbytes over the devices of io.stat
// ("8:0 rbytes=1 wbytes=2 rios=3 ...").
func parseIOStatV2(b []byte, ok bool) (read, written float64, _ bool) {
	if !ok {
		return 0, 0, false
	}
	for line := range bytes.Lines(b) {
		fields := strings.Fields(string(line))
		if len(fields) < 2 {
			continue
		}
		for _, f := range fields[1:] {
			k, v, found := strings.Cut(f, "=")
			if !found {
				continue
			}
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				continue
			}
			switch k {
			case "rbytes":
				read += n
			case "wbytes":
				written += n
			}
		}
	}
	return read, written, true
}

// readBlkioV1 sums the Read and Write lines of
// blkio.throttle.io_service_bytes_recursive ("8:0 Read 123").
func parseBlkioV1(b []byte, ok bool) (read, written float64, _ bool) {
	if !ok {
		return 0, 0, false
	}
	for line := range bytes.Lines(b) {
		f := strings.Fields(string(line))
		if len(f) != 3 {
			continue
		}
		n, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			continue
		}
		switch f[1] {
		case "Read":
			read += n
		case "Write":
			written += n
		}
	}
	return read, written, true
}

// readPressure returns the "total=" microseconds of the some and full
// lines of a PSI file, in seconds; full is -1 when absent (cpu.pressure on
// older kernels).
func parsePressure(b []byte, ok bool) (some, full float64, _ bool) {
	if !ok {
		return 0, 0, false
	}
	some, full = -1, -1
	for line := range bytes.Lines(b) {
		f := strings.Fields(string(line))
		if len(f) == 0 {
			continue
		}
		for _, kv := range f[1:] {
			v, found := strings.CutPrefix(kv, "total=")
			if !found {
				continue
			}
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				continue
			}
			switch f[0] {
			case "some":
				some = n / 1e6
			case "full":
				full = n / 1e6
			}
		}
	}
	return some, full, some >= 0
}
