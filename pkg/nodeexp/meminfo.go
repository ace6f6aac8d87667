package nodeexp

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
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
}

func newMeminfoCollector(cfg *Config, _ *slog.Logger) (Collector, error) {
	return &meminfoCollector{path: filepath.Join(cfg.ProcPath, "meminfo")}, nil
}

func (c *meminfoCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	b, err := os.ReadFile(c.path)
	if err != nil {
		return fmt.Errorf("couldn't get meminfo: %w", err)
	}
	fields, err := parseMeminfo(b)
	if err != nil {
		return fmt.Errorf("couldn't parse %s: %w", c.path, err)
	}
	for _, f := range fields {
		d := c.descs.get("node_memory_"+f.name, "Memory information field "+f.name+".")
		c.series.send(ch, d, prometheus.GaugeValue, f.value)
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
