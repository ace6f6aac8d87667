package podstats

import (
	"bytes"
	"strconv"
	"strings"
)

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
		if len(line) <= len(key) || line[len(key)] != ' ' || string(line[:len(key)]) != key {
			continue
		}
		return number(line[len(key)+1:])
	}
	return 0, false
}

func parseFloat(b []byte, ok bool) (float64, bool) {
	if !ok {
		return 0, false
	}
	return number(b) // "max" fails here too
}

// number parses a cgroup value. Nearly all are unsigned decimal integers,
// parsed here without a string conversion; anything else goes through
// strconv.
func number(b []byte) (float64, bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return 0, false
	}
	var n uint64
	for i, c := range b {
		if c < '0' || c > '9' || i >= 19 { // 19 digits cannot overflow uint64
			f, err := strconv.ParseFloat(string(b), 64)
			return f, err == nil
		}
		n = n*10 + uint64(c-'0')
	}
	return float64(n), true
}

// parseIOStatV2 sums rbytes and wbytes over the devices of io.stat
// ("8:0 rbytes=1 wbytes=2 rios=3 ...").
func parseIOStatV2(b []byte, ok bool) (read, written float64, _ bool) {
	if !ok {
		return 0, 0, false
	}
	for line := range bytes.Lines(b) {
		fields := line
		if i := bytes.IndexByte(fields, ' '); i >= 0 {
			fields = fields[i+1:]
		} else {
			continue // a device with no counters
		}
		for len(fields) > 0 {
			f := fields
			if i := bytes.IndexByte(fields, ' '); i >= 0 {
				f, fields = fields[:i], fields[i+1:]
			} else {
				fields = nil
			}
			k, v, found := bytes.Cut(f, []byte{'='})
			if !found {
				continue
			}
			switch string(k) {
			case "rbytes":
				if n, ok := number(v); ok {
					read += n
				}
			case "wbytes":
				if n, ok := number(v); ok {
					written += n
				}
			}
		}
	}
	return read, written, true
}

// parseBlkioV1 sums the Read and Write lines of
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

// parsePressure returns the "total=" microseconds of the some and full
// lines of a PSI file, in seconds; full is -1 when absent (cpu.pressure on
// older kernels).
func parsePressure(b []byte, ok bool) (some, full float64, _ bool) {
	if !ok {
		return 0, 0, false
	}
	some, full = -1, -1
	for line := range bytes.Lines(b) {
		kind, rest, _ := bytes.Cut(bytes.TrimSpace(line), []byte{' '})
		_, total, found := bytes.Cut(rest, []byte("total="))
		if !found {
			continue
		}
		if i := bytes.IndexByte(total, ' '); i >= 0 {
			total = total[:i]
		}
		n, ok := number(total)
		if !ok {
			continue
		}
		switch string(kind) {
		case "some":
			some = n / 1e6
		case "full":
			full = n / 1e6
		}
	}
	return some, full, some >= 0
}
