package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// tapestatsCollector reports SCSI tape drives (/sys/class/scsi_tape).
type tapestatsCollector struct {
	fs     sysfs.FS
	ignore *regexp.Regexp
	descs  [10]*constmetric.Desc
}

var tapestatsFamilies = [10]struct {
	name, help string
	counter    bool
}{
	{"io_now", "The number of I/Os currently outstanding to this device.", false},
	{"io_time_seconds_total", "The amount of time spent waiting for all I/O to complete (including read and write). This includes tape movement commands such as seeking between file or set marks and implicit tape movement such as when rewind on close tape devices are used.", true},
	{"io_others_total", "The number of I/Os issued to the tape drive other than read or write commands. The time taken to complete these commands uses the following calculation io_time_seconds_total-read_time_seconds_total-write_time_seconds_total", true},
	{"read_bytes_total", "The number of bytes read from the tape drive.", true},
	{"reads_completed_total", "The number of read requests issued to the tape drive.", true},
	{"read_time_seconds_total", "The amount of time spent waiting for read requests to complete.", true},
	{"residual_total", "The number of times during a read or write we found the residual amount to be non-zero. This should mean that a program is issuing a read larger thean the block size on tape. For write not all data made it to tape.", true},
	{"written_bytes_total", "The number of bytes written to the tape drive.", true},
	{"writes_completed_total", "The number of write requests issued to the tape drive.", true},
	{"write_time_seconds_total", "The amount of time spent waiting for write requests to complete.", true},
}

// errNoTapes: the node lacks what the collector reads; returned on every
// scrape, so built once.
var errNoTapes = fmt.Errorf("no SCSI tapes (/sys/class/scsi_tape): %w", nodeexp.ErrNoData)

func newTapestatsCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := sysfs.NewFS(cfg.SysPath)
	if err != nil {
		return nil, fmt.Errorf("opening sysfs %q: %w", cfg.SysPath, err)
	}
	re, err := regexp.Compile(cfg.TapestatsIgnoredDevices)
	if err != nil {
		return nil, fmt.Errorf("compiling tapestats ignored-devices: %w", err)
	}
	c := &tapestatsCollector{fs: fs, ignore: re}
	for i, f := range tapestatsFamilies {
		c.descs[i] = constmetric.NewDesc("node_tape_"+f.name, f.help, []string{"device"}, nil)
	}
	return c, nil
}

func (c *tapestatsCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	tapes, err := c.fs.SCSITapeClass()
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errNoTapes
	case err != nil:
		return fmt.Errorf("couldn't get SCSI tape class: %w", err)
	}
	for _, tape := range tapes {
		if c.ignore.MatchString(tape.Name) {
			continue
		}
		n := tape.Counters
		// Nanoseconds become seconds as node_exporter computes them, so
		// the floats are the same.
		for i, v := range [10]float64{float64(n.InFlight), float64(n.IoNs) * 0.000000001, float64(n.OtherCnt), float64(n.ReadByteCnt),
			float64(n.ReadCnt), float64(n.ReadNs) * 0.000000001, float64(n.ResidCnt), float64(n.WriteByteCnt), float64(n.WriteCnt),
			float64(n.WriteNs) * 0.000000001} {
			t := prometheus.GaugeValue
			if tapestatsFamilies[i].counter {
				t = prometheus.CounterValue
			}
			send(ch, c.descs[i], t, v, tape.Name)
		}
	}
	return nil
}
