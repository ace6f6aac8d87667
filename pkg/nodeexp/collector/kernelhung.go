package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// kernelHungCollector reports the kernel's count of hung tasks
// (/proc/sys/kernel/hung_task_detect_count, Linux 6.12 and later).
type kernelHungCollector struct {
	fs    procfs.FS
	tasks *constmetric.Desc
}

func newKernelHungCollector(cfg *Config, _ *slog.Logger) (nodeexp.Collector, error) {
	fs, err := procfs.NewFS(cfg.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("opening procfs %q: %w", cfg.ProcPath, err)
	}
	return &kernelHungCollector{fs: fs, tasks: constmetric.NewDesc("node_kernel_hung_tasks_total",
		"Total number of tasks that have been detected as hung since the system booted.", nil, nil)}, nil
}

func (c *kernelHungCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	h, err := c.fs.KernelHung()
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("no hung_task_detect_count: %w", errors.Join(nodeexp.ErrNoData, err))
	case err != nil:
		return fmt.Errorf("couldn't get hung tasks: %w", err)
	case h.HungTaskDetectCount == nil:
		return fmt.Errorf("no hung_task_detect_count: %w", nodeexp.ErrNoData)
	}
	send(ch, c.tasks, prometheus.CounterValue, float64(*h.HungTaskDetectCount))
	return nil
}
