package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodekit/nodekit/pkg/nodeexp"
)

// vmstatCollector reports the /proc/vmstat fields matching
// --collector.vmstat.fields (untyped, as node_exporter does).
type vmstatCollector struct {
	series seriesCache // label pairs of the series, across scrapes
	path   string
	fields *fieldFilter
	descs  descCache
}

func newVmstatCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fields, err := compileFieldFilter("vmstat", cfg.VmstatFields)
	if err != nil {
		return nil, err
	}
	return &vmstatCollector{path: filepath.Join(cfg.ProcPath, "vmstat"), fields: fields}, nil
}

func (c *vmstatCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	err := readFile(c.path, func(b []byte) error { return c.parse(ch, b) })
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("couldn't read %s: %w", c.path, err)
	}
	return err
}

func (c *vmstatCollector) parse(ch *nodeexp.Sink, b []byte) error {
	for len(b) > 0 {
		var line []byte
		line, b = cutLine(b)
		// Only kept fields cost a string: most of the ~180 lines are not.
		name, val, ok := bytes.Cut(line, []byte{' '})
		if !ok || !c.fields.keepBytes(name) {
			continue
		}
		v, err := strconv.ParseFloat(string(bytes.TrimSpace(val)), 64)
		if err != nil {
			return fmt.Errorf("invalid value for %s in %s: %w", name, c.path, err)
		}
		d := c.descs.get("node_vmstat_"+string(name), "/proc/vmstat information field "+string(name)+".")
		c.series.send(ch, d, prometheus.UntypedValue, v)
	}
	return nil
}
