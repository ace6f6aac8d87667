package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// kernelHungCollector reports the kernel's count of hung tasks
// (/proc/sys/kernel/hung_task_detect_count, Linux 6.12 and later). The
// one number is read with readUint rather than procfs.FS.KernelHung, whose
// os.ReadFile was half of this collector's CPU on kernels without the file.
type kernelHungCollector struct {
	path  string
	tasks *constmetric.Desc
}

// errNoHungTaskCount: the kernel predates the counter (Linux 6.12).
var errNoHungTaskCount = fmt.Errorf("no hung_task_detect_count: %w", nodeexp.ErrNoData)

func newKernelHungCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	return &kernelHungCollector{path: filepath.Join(cfg.ProcPath, "sys/kernel/hung_task_detect_count"), tasks: constmetric.NewDesc("node_kernel_hung_tasks_total",
		"Total number of tasks that have been detected as hung since the system booted.", nil, nil)}, nil
}

func (c *kernelHungCollector) Update(_ context.Context, ch *nodeexp.Sink) error {
	n, err := readUint(c.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errNoHungTaskCount
	case err != nil:
		return fmt.Errorf("couldn't get hung tasks: %w", err)
	}
	send(ch, c.tasks, prometheus.CounterValue, float64(n))
	return nil
}
