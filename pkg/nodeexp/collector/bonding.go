package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// bondingCollector counts configured and MII-up slaves of each bonding
// master (/sys/class/net/bonding_masters; the node-mixin's
// NodeBondingDegraded alert).
type bondingCollector struct {
	series         seriesCache // label pairs of the series, across scrapes
	root           string
	slaves, active *constmetric.Desc
}

func newBondingCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	return &bondingCollector{
		root:   filepath.Join(cfg.SysPath, "class/net"),
		slaves: constmetric.NewDesc("node_bonding_slaves", "Number of configured slaves per bonding interface.", []string{"master"}, nil),
		active: constmetric.NewDesc("node_bonding_active", "Number of active slaves per bonding interface.", []string{"master"}, nil),
	}, nil
}

func (c *bondingCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	masters, err := readString(filepath.Join(c.root, "bonding_masters"))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("bonding module not loaded: %w", nodeexp.ErrNoData)
	}
	if err != nil {
		return fmt.Errorf("reading bonding_masters: %w", err)
	}
	for _, m := range strings.Fields(masters) {
		slaves, err := readString(filepath.Join(c.root, m, "bonding", "slaves"))
		if err != nil {
			return fmt.Errorf("reading slaves of %s: %w", m, err)
		}
		total, up := 0, 0
		for _, s := range strings.Fields(slaves) {
			// Newer kernels link slaves as lower_<dev>, older ones as slave_<dev>.
			st, err := readString(filepath.Join(c.root, m, "lower_"+s, "bonding_slave", "mii_status"))
			if errors.Is(err, os.ErrNotExist) {
				st, err = readString(filepath.Join(c.root, m, "slave_"+s, "bonding_slave", "mii_status"))
			}
			if err != nil {
				return fmt.Errorf("reading mii_status of %s in %s: %w", s, m, err)
			}
			total++
			if strings.TrimSpace(st) == "up" {
				up++
			}
		}
		c.series.send(ch, c.slaves, prometheus.GaugeValue, float64(total), m)
		c.series.send(ch, c.active, prometheus.GaugeValue, float64(up), m)
	}
	return nil
}
