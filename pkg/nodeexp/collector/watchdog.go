package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// watchdogCollector reports hardware watchdogs (/sys/class/watchdog).
type watchdogCollector struct {
	series  seriesCache
	fs      sysfs.FS
	sysPath string
	values  [7]*constmetric.Desc
	info    *constmetric.Desc
}

var watchdogValues = [7][2]string{
	{"bootstatus", "bootstatus"}, {"fw_version", "fw_version"}, {"nowayout", "nowayout"}, {"timeleft_seconds", "timeleft"},
	{"timeout_seconds", "timeout"}, {"pretimeout_seconds", "pretimeout"}, {"access_cs0", "access_cs0"},
}

func newWatchdogCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := sysfs.NewFS(cfg.SysPath)
	if err != nil {
		return nil, fmt.Errorf("opening sysfs %q: %w", cfg.SysPath, err)
	}
	c := &watchdogCollector{fs: fs, sysPath: cfg.SysPath, info: constmetric.NewDesc("node_watchdog_info", "Info of /sys/class/watchdog/<watchdog>",
		[]string{"name", "options", "identity", "state", "status", "pretimeout_governor"}, nil)}
	for i, v := range watchdogValues {
		c.values[i] = constmetric.NewDesc("node_watchdog_"+v[0], "Value of /sys/class/watchdog/<watchdog>/"+v[1], []string{"name"}, nil)
	}
	return c, nil
}

func (c *watchdogCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	if any, err := anyEntry(filepath.Join(c.sysPath, "class/watchdog"), except()); err == nil && !any {
		return nil
	}
	class, err := c.fs.WatchdogClass()
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, os.ErrPermission), errors.Is(err, os.ErrInvalid):
		return fmt.Errorf("could not read watchdogs: %w", errors.Join(nodeexp.ErrNoData, err))
	case err != nil:
		return fmt.Errorf("couldn't get watchdog class: %w", err)
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	for _, w := range class {
		for i, v := range [7]*int64{w.Bootstatus, w.FwVersion, w.Nowayout, w.Timeleft, w.Timeout, w.Pretimeout, w.AccessCs0} {
			if v != nil {
				c.series.send(ch, c.values[i], prometheus.GaugeValue, float64(*v), w.Name)
			}
		}
		c.series.send(ch, c.info, prometheus.GaugeValue, 1, w.Name, str(w.Options), str(w.Identity), str(w.State), str(w.Status), str(w.PretimeoutGovernor))
	}
	return nil
}
