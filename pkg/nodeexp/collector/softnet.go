package collector

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// softnetCollector reports /proc/net/softnet_stat per CPU.
type softnetCollector struct {
	series                                                                 seriesCache // label pairs of the series, across scrapes
	fs                                                                     procfs.FS
	processed, dropped, squeezed, collision, rps, flowLimit, backlogLength *constmetric.Desc
}

func newSoftnetCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := procfs.NewFS(cfg.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("opening procfs %q: %w", cfg.ProcPath, err)
	}
	l := []string{"cpu"}
	return &softnetCollector{
		fs:            fs,
		processed:     constmetric.NewDesc("node_softnet_processed_total", "Number of processed packets", l, nil),
		dropped:       constmetric.NewDesc("node_softnet_dropped_total", "Number of dropped packets", l, nil),
		squeezed:      constmetric.NewDesc("node_softnet_times_squeezed_total", "Number of times processing packets ran out of quota", l, nil),
		collision:     constmetric.NewDesc("node_softnet_cpu_collision_total", "Number of collision occur while obtaining device lock while transmitting", l, nil),
		rps:           constmetric.NewDesc("node_softnet_received_rps_total", "Number of times cpu woken up received_rps", l, nil),
		flowLimit:     constmetric.NewDesc("node_softnet_flow_limit_count_total", "Number of times flow limit has been reached", l, nil),
		backlogLength: constmetric.NewDesc("node_softnet_backlog_len", "Softnet backlog status", l, nil),
	}, nil
}

func (c *softnetCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	stats, err := c.fs.NetSoftnetStat()
	if err != nil {
		return fmt.Errorf("could not get softnet statistics: %w", err)
	}
	for _, s := range stats {
		cpu := strconv.FormatUint(uint64(s.Index), 10)
		c.series.send(ch, c.processed, prometheus.CounterValue, float64(s.Processed), cpu)
		c.series.send(ch, c.dropped, prometheus.CounterValue, float64(s.Dropped), cpu)
		c.series.send(ch, c.squeezed, prometheus.CounterValue, float64(s.TimeSqueezed), cpu)
		c.series.send(ch, c.collision, prometheus.CounterValue, float64(s.CPUCollision), cpu)
		c.series.send(ch, c.rps, prometheus.CounterValue, float64(s.ReceivedRps), cpu)
		c.series.send(ch, c.flowLimit, prometheus.CounterValue, float64(s.FlowLimitCount), cpu)
		c.series.send(ch, c.backlogLength, prometheus.GaugeValue, float64(s.SoftnetBacklogLen), cpu)
	}
	return nil
}
