package collector

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// filefdCollector reports /proc/sys/fs/file-nr.
type filefdCollector struct {
	series             seriesCache // label pairs of the series, across scrapes
	path               string
	allocated, maximum *constmetric.Desc
}

func newFilefdCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	return &filefdCollector{
		path:      filepath.Join(cfg.ProcPath, "sys/fs/file-nr"),
		allocated: constmetric.NewDesc("node_filefd_allocated", "File descriptor statistics: allocated.", nil, nil),
		maximum:   constmetric.NewDesc("node_filefd_maximum", "File descriptor statistics: maximum.", nil, nil),
	}, nil
}

func (c *filefdCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	b, err := readString(c.path)
	if err != nil {
		return fmt.Errorf("couldn't get file-nr: %w", err)
	}
	// file-nr is "allocated unused maximum".
	f := strings.Fields(b)
	if len(f) != 3 {
		return fmt.Errorf("malformed %s: %q", c.path, b)
	}
	alloc, err1 := strconv.ParseFloat(f[0], 64)
	maxFD, err2 := strconv.ParseFloat(f[2], 64)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("malformed %s: %q", c.path, b)
	}
	c.series.send(ch, c.allocated, prometheus.GaugeValue, alloc)
	c.series.send(ch, c.maximum, prometheus.GaugeValue, maxFD)
	return nil
}
