package podstats

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
)

// keyValues holds a flat-keyed cgroup file ("key value" per line:
// cpu.stat, memory.stat, memory.events, memory.oom_control). The buffer is
// reused across files of one pod to keep a 100-pod scrape cheap.
type keyValues struct {
	buf []byte
}

func (kv *keyValues) read(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	kv.buf = b
	return true
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

func readFloat(path string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, strconv.ErrRange
	}
	return strconv.ParseFloat(s, 64)
}

// readIOStatV2 sums rbytes and wbytes over the devices of io.stat
// ("8:0 rbytes=1 wbytes=2 rios=3 ...").
func readIOStatV2(path string) (read, written float64, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, false
	}
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		fields := strings.Fields(s.Text())
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
func readBlkioV1(path string) (read, written float64, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, false
	}
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		f := strings.Fields(s.Text())
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
func readPressure(path string) (some, full float64, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, false
	}
	some, full = -1, -1
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		f := strings.Fields(s.Text())
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
