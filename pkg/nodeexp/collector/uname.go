package collector

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// unameCollector reports uname(2) as node_uname_info.
type unameCollector struct {
	series seriesCache // label pairs of the series, across scrapes
	desc   *constmetric.Desc
	uname  func(*unix.Utsname) error
}

func newUnameCollector(_ *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	return &unameCollector{
		desc: constmetric.NewDesc("node_uname_info", "Labeled system information as provided by the uname system call.",
			[]string{"sysname", "release", "version", "machine", "nodename", "domainname"}, nil),
		uname: unix.Uname,
	}, nil
}

func (c *unameCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	var u unix.Utsname
	if err := c.uname(&u); err != nil {
		return fmt.Errorf("calling uname: %w", err)
	}
	c.series.send(ch, c.desc, prometheus.GaugeValue, 1,
		unix.ByteSliceToString(u.Sysname[:]),
		unix.ByteSliceToString(u.Release[:]),
		unix.ByteSliceToString(u.Version[:]),
		unix.ByteSliceToString(u.Machine[:]),
		unix.ByteSliceToString(u.Nodename[:]),
		unix.ByteSliceToString(u.Domainname[:]),
	)
	return nil
}
