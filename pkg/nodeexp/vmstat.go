package nodeexp

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// vmstatCollector reports the /proc/vmstat fields matching
// --collector.vmstat.fields (untyped, as node_exporter does).
type vmstatCollector struct {
	path   string
	fields *fieldFilter
	descs  descCache
}

func newVmstatCollector(cfg *Config, _ *slog.Logger) (Collector, error) {
	re, err := regexp.Compile(cfg.VmstatFields)
	if err != nil {
		return nil, fmt.Errorf("compiling vmstat fields %q: %w", cfg.VmstatFields, err)
	}
	return &vmstatCollector{path: filepath.Join(cfg.ProcPath, "vmstat"), fields: newFieldFilter(re)}, nil
}

func (c *vmstatCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	b, err := os.ReadFile(c.path)
	if err != nil {
		return fmt.Errorf("couldn't read %s: %w", c.path, err)
	}
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		name, val, ok := strings.Cut(s.Text(), " ")
		if !ok || !c.fields.keep(name) {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return fmt.Errorf("invalid value for %s in %s: %w", name, c.path, err)
		}
		d := c.descs.get("node_vmstat_"+name, "/proc/vmstat information field "+name+".")
		send(ch, d, prometheus.UntypedValue, v)
	}
	return s.Err()
}
