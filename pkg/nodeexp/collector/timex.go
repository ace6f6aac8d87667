package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// timexCollector reports the kernel clock discipline (adjtimex(2)); the
// node-mixin alerts on node_timex_offset_seconds and sync_status.
type timexCollector struct {
	series   seriesCache // label pairs of the series, across scrapes
	descs    [17]*constmetric.Desc
	types    [17]prometheus.ValueType
	adjtimex func(*unix.Timex) (int, error)
}

// Constants of adjtimex(2).
const (
	timexTimeError = 5      // TIME_ERROR: clock not synchronised
	timexStaNano   = 0x2000 // STA_NANO: offset and jitter in ns, not µs
	ppm16frac      = 1000000.0 * 65536.0
)

var timexNames = [17][3]string{
	{"sync_status", "Is clock synchronized to a reliable server (1 = yes, 0 = no).", "g"},
	{"offset_seconds", "Time offset in between local system and reference clock.", "g"},
	{"frequency_adjustment_ratio", "Local clock frequency adjustment.", "g"},
	{"maxerror_seconds", "Maximum error in seconds.", "g"},
	{"estimated_error_seconds", "Estimated error in seconds.", "g"},
	{"status", "Value of the status array bits.", "g"},
	{"loop_time_constant", "Phase-locked loop time constant.", "g"},
	{"tick_seconds", "Seconds between clock ticks.", "g"},
	{"pps_frequency_hertz", "Pulse per second frequency.", "g"},
	{"pps_jitter_seconds", "Pulse per second jitter.", "g"},
	{"pps_shift_seconds", "Pulse per second interval duration.", "g"},
	{"pps_stability_hertz", "Pulse per second stability, average of recent frequency changes.", "g"},
	{"pps_jitter_total", "Pulse per second count of jitter limit exceeded events.", "c"},
	{"pps_calibration_total", "Pulse per second count of calibration intervals.", "c"},
	{"pps_error_total", "Pulse per second count of calibration errors.", "c"},
	{"pps_stability_exceeded_total", "Pulse per second count of stability limit exceeded events.", "c"},
	{"tai_offset_seconds", "International Atomic Time (TAI) offset.", "g"},
}

func newTimexCollector(_ *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	c := &timexCollector{adjtimex: unix.Adjtimex}
	for i, n := range timexNames {
		c.descs[i] = constmetric.NewDesc("node_timex_"+n[0], n[1], nil, nil)
		c.types[i] = prometheus.GaugeValue
		if n[2] == "c" {
			c.types[i] = prometheus.CounterValue
		}
	}
	return c, nil
}

func (c *timexCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	var tx unix.Timex
	state, err := c.adjtimex(&tx)
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("not allowed to call adjtimex: %w", errors.Join(nodeexp.ErrNoData, err))
	}
	if err != nil {
		return fmt.Errorf("failed to retrieve adjtimex stats: %w", err)
	}
	for i, v := range timexValues(state, &tx) {
		c.series.send(ch, c.descs[i], c.types[i], v)
	}
	return nil
}

// timexValues converts adjtimex(2) results to the units of timexNames.
func timexValues(state int, tx *unix.Timex) [17]float64 {
	sync := 1.0
	if state == timexTimeError {
		sync = 0
	}
	div := 1e6
	if tx.Status&timexStaNano != 0 {
		div = 1e9
	}
	return [17]float64{
		sync,
		float64(tx.Offset) / div,
		1 + float64(tx.Freq)/ppm16frac,
		float64(tx.Maxerror) / 1e6,
		float64(tx.Esterror) / 1e6,
		float64(tx.Status),
		float64(tx.Constant),
		float64(tx.Tick) / 1e6,
		float64(tx.Ppsfreq) / ppm16frac,
		float64(tx.Jitter) / div,
		float64(tx.Shift),
		float64(tx.Stabil) / ppm16frac,
		float64(tx.Jitcnt),
		float64(tx.Calcnt),
		float64(tx.Errcnt),
		float64(tx.Stbcnt),
		float64(tx.Tai),
	}
}
