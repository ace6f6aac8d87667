package collector

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// meminfoCollector reports every field of /proc/meminfo generically, so new
// kernel fields appear without a code change. procfs.Meminfo is a fixed
// struct, hence the small parser here. Naming follows node_exporter:
// "Active(anon)" becomes Active_anon, fields in kB are converted to bytes and
// get a _bytes suffix, unitless fields (HugePages_*) keep their name.
type meminfoCollector struct {
	series seriesCache // label pairs of the series, across scrapes
	path   string
	descs  descCache

	// mu guards the read buffer and the fields seen in earlier scrapes,
	// by their key in the file ("Active(anon)"), so a scrape parses only
	// numbers: building each name, help and line string again was most
	// of the collector's allocations.
	mu     sync.Mutex
	buf    []byte
	fields map[string]*meminfoKey
	gen    uint64
}

// meminfoKey is what a key of /proc/meminfo turns into; keys that map to
// one name (node_exporter drops parentheses) share it.
type meminfoKey struct {
	desc *constmetric.Desc
	kB   bool   // the value is in kB, exported in bytes
	gen  uint64 // the scrape that last sent it: a name is sent once
}

func newMeminfoCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	return &meminfoCollector{path: filepath.Join(cfg.ProcPath, "meminfo"), fields: map[string]*meminfoKey{}}, nil
}

func (c *meminfoCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	c.buf, err = readFileInto(c.path, c.buf)
	if err != nil {
		return fmt.Errorf("couldn't get meminfo: %w", err)
	}
	c.gen++
	type sample struct {
		desc *constmetric.Desc
		v    float64
	}
	var out [128]sample
	samples := out[:0]
	for rest := c.buf; len(rest) > 0; {
		var line []byte
		line, rest = cutLine(rest)
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		num, unit, _ := bytes.Cut(bytes.TrimSpace(val), []byte(" "))
		unit = bytes.TrimSpace(unit)
		k := c.fields[string(key)]
		if k == nil || k.kB != (len(unit) > 0) || (len(unit) > 0 && string(unit) != "kB") {
			return c.updateSlow(ch)
		}
		v, err := strconv.ParseFloat(string(num), 64)
		if err != nil {
			return c.updateSlow(ch)
		}
		if k.desc == nil || k.gen == c.gen {
			continue // not a valid name, or its name was sent already
		}
		k.gen = c.gen
		if k.kB {
			v *= 1024
		}
		samples = append(samples, sample{k.desc, v})
	}
	for _, s := range samples {
		c.series.send(ch, s.desc, prometheus.GaugeValue, s.v)
	}
	return nil
}

// updateSlow parses the buffer with parseMeminfo, reporting its errors, and
// learns the keys for the next scrapes. Called with mu held.
func (c *meminfoCollector) updateSlow(ch *nodeexp.Sink) error {
	fields, err := parseMeminfo(c.buf)
	if err != nil {
		return fmt.Errorf("couldn't parse %s: %w", c.path, err)
	}
	byName := make(map[string]*meminfoKey, len(fields))
	for _, f := range fields {
		d := c.descs.get("node_memory_"+f.name, "Memory information field "+f.name+".")
		byName[f.name] = &meminfoKey{desc: d, gen: c.gen}
		c.series.send(ch, d, prometheus.GaugeValue, f.value)
	}
	// Relearn every key of the file, sharing an entry per name.
	clear(c.fields)
	for rest := c.buf; len(rest) > 0; {
		var line []byte
		line, rest = cutLine(rest)
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		_, unit, _ := bytes.Cut(bytes.TrimSpace(val), []byte(" "))
		kB := len(bytes.TrimSpace(unit)) > 0
		name := parenReplacer.Replace(strings.TrimSpace(string(key)))
		if kB {
			name += "_bytes"
		}
		k := byName[name]
		if k == nil {
			k = &meminfoKey{gen: c.gen} // skipped by parseMeminfo: never sent
		}
		c.fields[string(key)] = &meminfoKey{desc: k.desc, kB: kB, gen: k.gen}
		if k.desc != nil {
			// Keys of one name share the entry, so the name is sent once.
			c.fields[string(key)] = k
			k.kB = kB
		}
	}
	return nil
}

// parenReplacer is immutable and safe for concurrent use.
var parenReplacer = strings.NewReplacer("(", "_", ")", "")

type meminfoField struct {
	name  string
	value float64
}

func parseMeminfo(b []byte) ([]meminfoField, error) {
	var out []meminfoField
	seen := make(map[string]bool)
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		key, rest, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		parts := strings.Fields(rest)
		if len(parts) == 0 || len(parts) > 2 {
			return nil, fmt.Errorf("malformed line %q", s.Text())
		}
		v, err := strconv.ParseFloat(parts[0], 64)
		if err != nil {
			return nil, fmt.Errorf("malformed value in line %q: %w", s.Text(), err)
		}
		name := parenReplacer.Replace(strings.TrimSpace(key))
		if len(parts) == 2 {
			if parts[1] != "kB" {
				return nil, fmt.Errorf("unknown unit %q in line %q", parts[1], s.Text())
			}
			v *= 1024
			name += "_bytes"
		}
		if !validMetricSuffix(name) || seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, meminfoField{name: name, value: v})
	}
	return out, s.Err()
}

// validMetricSuffix reports whether s can follow "node_<subsystem>_" in a
// metric name; anything else from a kernel file is skipped, not panicked on.
func validMetricSuffix(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == ':' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')) {
			return false
		}
	}
	return true
}
