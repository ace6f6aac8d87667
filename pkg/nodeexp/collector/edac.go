package collector

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// edacCollector reports memory errors counted by the EDAC drivers
// (/sys/devices/system/edac/mc), per controller, csrow and channel. procfs
// has no reader for them; these are plain one-number files.
type edacCollector struct {
	sysPath                        string
	logger                         *slog.Logger
	ce, ue, csrowCE, csrowUE, chCE *constmetric.Desc
	chUE                           *constmetric.Desc
}

var edacChannelRE = regexp.MustCompile(`^ch([0-9]+)_ce_count$`)

func newEdacCollector(cfg *Config, logger *slog.Logger) (nodeexp.Collector, error) {
	d := func(name, help string, labels ...string) *constmetric.Desc {
		return constmetric.NewDesc("node_edac_"+name, help, labels, nil)
	}
	return &edacCollector{
		sysPath: cfg.SysPath,
		logger:  logger,
		ce:      d("correctable_errors_total", "Total correctable memory errors.", "controller"),
		ue:      d("uncorrectable_errors_total", "Total uncorrectable memory errors.", "controller"),
		csrowCE: d("csrow_correctable_errors_total", "Total correctable memory errors for this csrow.", "controller", "csrow"),
		csrowUE: d("csrow_uncorrectable_errors_total", "Total uncorrectable memory errors for this csrow.", "controller", "csrow"),
		chCE:    d("channel_correctable_errors_total", "Total correctable memory errors for this channel.", "controller", "csrow", "channel", "dimm_label"),
		chUE:    d("channel_uncorrectable_errors_total", "Total uncorrectable memory errors for this channel.", "controller", "csrow", "channel", "dimm_label"),
	}, nil
}

func (c *edacCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	controllers, err := filepath.Glob(filepath.Join(c.sysPath, "devices/system/edac/mc/mc[0-9]*"))
	if err != nil {
		return err
	}
	for _, mc := range controllers {
		n := strings.TrimPrefix(filepath.Base(mc), "mc")
		if !isDigits(n) {
			continue
		}
		for _, f := range []struct {
			file string
			desc *constmetric.Desc
			row  bool // reported as csrow "unknown"
		}{{"ce_count", c.ce, false}, {"ce_noinfo_count", c.csrowCE, true}, {"ue_count", c.ue, false}, {"ue_noinfo_count", c.csrowUE, true}} {
			v, err := readUint(filepath.Join(mc, f.file))
			if err != nil {
				return fmt.Errorf("couldn't get %s for controller %s: %w", f.file, n, err)
			}
			if f.row {
				send(ch, f.desc, prometheus.CounterValue, float64(v), n, "unknown")
			} else {
				send(ch, f.desc, prometheus.CounterValue, float64(v), n)
			}
		}
		rows, err := filepath.Glob(mc + "/csrow[0-9]*")
		if err != nil {
			return err
		}
		for _, row := range rows {
			r := strings.TrimPrefix(filepath.Base(row), "csrow")
			if !isDigits(r) {
				continue
			}
			for _, f := range []struct {
				file string
				desc *constmetric.Desc
			}{{"ce_count", c.csrowCE}, {"ue_count", c.csrowUE}} {
				v, err := readUint(filepath.Join(row, f.file))
				if err != nil {
					return fmt.Errorf("couldn't get %s for controller/csrow %s/%s: %w", f.file, n, r, err)
				}
				send(ch, f.desc, prometheus.CounterValue, float64(v), n, r)
			}
			channels, err := filepath.Glob(row + "/ch*_ce_count")
			if err != nil {
				return err
			}
			for _, chFile := range channels {
				m := edacChannelRE.FindStringSubmatch(filepath.Base(chFile))
				if m == nil {
					continue
				}
				label := edacDimmLabel(row, m[1])
				v, err := readUint(chFile)
				if err != nil {
					return fmt.Errorf("couldn't get ce_count for controller/csrow/channel %s/%s/%s: %w", n, r, m[1], err)
				}
				send(ch, c.chCE, prometheus.CounterValue, float64(v), n, r, m[1], label)
				if v, err := readUint(filepath.Join(row, "ch"+m[1]+"_ue_count")); err == nil {
					send(ch, c.chUE, prometheus.CounterValue, float64(v), n, r, m[1], label)
				} else {
					c.logger.Debug("no ue_count for channel", "controller", n, "csrow", r, "channel", m[1], "err", err)
				}
			}
		}
	}
	return nil
}

// edacDimmLabel is a channel's DIMM label as node_exporter shapes it.
func edacDimmLabel(row, channel string) string {
	b, err := readString(filepath.Join(row, "ch"+channel+"_dimm_label"))
	if err != nil {
		return "unknown"
	}
	l := strings.TrimSpace(b)
	l = strings.ReplaceAll(l, "#", "")
	l = strings.ReplaceAll(l, "csrow", "_csrow")
	return strings.ReplaceAll(l, "channel", "_channel")
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
