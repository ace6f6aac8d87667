package collector

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

const namespace = "node"

// send emits one constant metric. Kernel files can hold label values that
// are not valid UTF-8; instead of panicking like MustNewConstMetric, the
// problem is reported as an invalid metric, which fails just that series.
func send(ch *nodeexp.Sink, desc *constmetric.Desc, t prometheus.ValueType, v float64, labelValues ...string) {
	ch.Send(desc.MustNew(t, v, labelValues...))
}

// descCache keeps the descriptors of families whose names come from the
// kernel (meminfo, netstat, vmstat, sockstat), so a scrape does not build
// and hash the same Desc again. Safe for concurrent use.
type descCache struct {
	mu sync.Mutex
	m  map[string]*constmetric.Desc
}

func (c *descCache) get(name, help string, labels ...string) *constmetric.Desc {
	return c.getKeyed(name, name, help, labels...)
}

// getKeyed is get for families whose descriptors differ by more than
// their name (label names that vary per device): key tells them apart.
func (c *descCache) getKeyed(key, name, help string, labels ...string) *constmetric.Desc {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.m[key]; ok {
		return d
	}
	if c.m == nil {
		c.m = make(map[string]*constmetric.Desc)
	}
	d := constmetric.NewDesc(name, help, labels, nil)
	// Bound the cache should a kernel produce endless names.
	if len(c.m) < 10000 {
		c.m[key] = d
	}
	return d
}

// readUint reads a file holding a single unsigned integer (sysfs style),
// with one read(2) into a stack buffer: os.ReadFile also registers the
// descriptor with epoll, stats it and allocates. A file longer than the
// buffer holds no single integer and fails to parse, as it did.
func readUint(path string) (uint64, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var b [64]byte
	n, err := unix.Read(fd, b[:])
	for errors.Is(err, unix.EINTR) {
		n, err = unix.Read(fd, b[:])
	}
	if err != nil {
		return 0, &os.PathError{Op: "read", Path: path, Err: err}
	}
	return strconv.ParseUint(string(bytes.TrimSpace(b[:max(n, 0)])), 10, 64)
}

// fieldFilter memoizes a field regexp: the kernel's field names are a fixed
// set, and matching each of /proc/net/netstat's ~300 names against the
// filter on every scrape was a tenth of a scrape's CPU.
type fieldFilter struct {
	re   *regexp.Regexp
	mu   sync.Mutex
	seen map[string]bool
}

func newFieldFilter(re *regexp.Regexp) *fieldFilter {
	return &fieldFilter{re: re, seen: make(map[string]bool)}
}

// compileFieldFilter builds the filter of a collector's --collector.<name>.fields.
func compileFieldFilter(collector, pattern string) (*fieldFilter, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("compiling %s fields %q: %w", collector, pattern, err)
	}
	return newFieldFilter(re), nil
}

func (f *fieldFilter) keep(name string) bool {
	return f.keepBytes([]byte(name))
}

// keepBytes is keep for a name being assembled in a buffer: the map
// lookup with string(name) does not allocate, so only names seen for the
// first time cost a string.
func (f *fieldFilter) keepBytes(name []byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.seen[string(name)]
	if !ok {
		s := string(name)
		k = f.re.MatchString(s) && validMetricSuffix(s)
		// Bound the memo should a kernel file ever produce endless names.
		if len(f.seen) < 10000 {
			f.seen[s] = k
		}
	}
	return k
}

// readFileInto reads the file at path into buf, reused from its start and
// grown as needed, and returns the contents. It calls open(2), read(2)
// and close(2) directly: os.Open also asks epoll to watch the descriptor,
// a syscall that always fails for /proc and /sys files.
func readFileInto(path string, buf []byte) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return buf[:0], &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if cap(buf) < 4096 {
		buf = make([]byte, 0, 4096)
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, cap(buf))
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return buf[:0], &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n <= 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// fileBufs are readFile's buffers: most files a collector reads per
// scrape hold a few hundred bytes, and a buffer each would be garbage.
var fileBufs = sync.Pool{New: func() any { return new([]byte) }}

// readFile calls fn with the contents of path, read by readFileInto into a
// pooled buffer that fn must not keep. os.ReadFile makes six system calls
// more than open(2) before its read (two fcntl to set O_NONBLOCK, an
// epoll_ctl that fails on a /proc or /sys file, two fcntl to clear the
// flag, fstat): on node_exporter's fixture tree, where the collectors open
// about 1,100 files a scrape, fcntl and epoll_ctl were half of nodeexp's
// 7,800 system calls a scrape (strace -c), most of them now in procfs.
func readFile(path string, fn func(b []byte) error) error {
	p := fileBufs.Get().(*[]byte)
	b, err := readFileInto(path, *p)
	if err == nil {
		err = fn(b)
	}
	if cap(b) <= 64<<10 {
		*p = b[:0]
		fileBufs.Put(p)
	}
	return err
}

// readString is readFile for a short attribute kept as a string.
func readString(path string) (string, error) {
	var s string
	err := readFile(path, func(b []byte) error { s = string(b); return nil })
	return s, err
}

// seriesCache keeps the label pairs of a collector's series across
// scrapes. Building and validating a fresh label pair (two strings behind
// pointers) per label of every series, every scrape, was two fifths of a
// scrape's allocations. A series seen before costs a share of a slab: a
// constmetric.Metric sharing its pairs, which are read-only once built.
// Pairs are kept by label layout, not by family: the nine filesystem
// families of a mount, or the fifty netdev and netclass families of an
// interface, share one set, which with 60 interfaces was 300 KB of heap
// kept between scrapes (and twice that in the GC's heap goal).
// The zero value is ready; safe for concurrent use.
type seriesCache struct {
	mu    sync.Mutex
	pairs map[string]map[string][]*dto.LabelPair // by layout, then values
	n     int
	key   []byte
	slab  []constmetric.Metric
}

// maxCachedSeries bounds a collector's cache: past it (series churn, such
// as mounts coming and going) the cache starts over.
const maxCachedSeries = 4096

// send emits one sample of desc with these label values, like the
// package-level send, reusing the series' label pairs when it has them.
func (s *seriesCache) send(ch *nodeexp.Sink, desc *constmetric.Desc, t prometheus.ValueType, v float64, labelValues ...string) {
	if len(labelValues) == 0 {
		// Nothing to cache: only the value and its type.
		s.mu.Lock()
		m := s.newMetric(desc, t, v, nil)
		s.mu.Unlock()
		ch.Send(m)
		return
	}
	s.mu.Lock()
	s.key = s.key[:0]
	for _, lv := range labelValues {
		s.key = append(append(s.key, lv...), 0xff) // 0xff never occurs in valid UTF-8
	}
	layout := desc.Layout()
	pairs, ok := s.pairs[layout][string(s.key)]
	s.mu.Unlock()
	if !ok {
		var err error
		if pairs, err = desc.Pairs(labelValues...); err != nil {
			ch.Send(prometheus.NewInvalidMetric(desc.Desc(), err))
			return
		}
		s.mu.Lock()
		if s.n >= maxCachedSeries || s.pairs == nil {
			s.pairs, s.n = make(map[string]map[string][]*dto.LabelPair), 0
		}
		byValues := s.pairs[layout]
		if byValues == nil {
			byValues = make(map[string][]*dto.LabelPair)
			s.pairs[layout] = byValues
		}
		s.key = s.key[:0]
		for _, lv := range labelValues {
			s.key = append(append(s.key, lv...), 0xff)
		}
		if _, dup := byValues[string(s.key)]; !dup {
			byValues[string(s.key)] = pairs
			s.n++
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	m := s.newMetric(desc, t, v, pairs)
	s.mu.Unlock()
	ch.Send(m)
}

// newMetric returns a constant metric from the current slab, allocating
// slabs of 32: one allocation per 32 series instead of one each. A slab is
// never reused, so a metric stays valid as long as it is referenced.
// Called with mu held.
func (s *seriesCache) newMetric(desc *constmetric.Desc, t prometheus.ValueType, v float64, pairs []*dto.LabelPair) *constmetric.Metric {
	if len(s.slab) == cap(s.slab) {
		s.slab = make([]constmetric.Metric, 0, 32)
	}
	s.slab = append(s.slab, constmetric.New(desc, t, v, pairs))
	return &s.slab[len(s.slab)-1]
}
