package nodeexp

import (
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "node"

// send emits one constant metric. Kernel files can hold label values that
// are not valid UTF-8; instead of panicking like MustNewConstMetric, the
// problem is reported as an invalid metric, which fails just that series.
func send(ch chan<- prometheus.Metric, desc *prometheus.Desc, t prometheus.ValueType, v float64, labelValues ...string) {
	m, err := prometheus.NewConstMetric(desc, t, v, labelValues...)
	if err != nil {
		m = prometheus.NewInvalidMetric(desc, err)
	}
	ch <- m
}

// descCache keeps the descriptors of families whose names come from the
// kernel (meminfo, netstat, vmstat, sockstat), so a scrape does not build
// and hash the same Desc again. Safe for concurrent use.
type descCache struct {
	mu sync.Mutex
	m  map[string]*prometheus.Desc
}

func (c *descCache) get(name, help string, labels ...string) *prometheus.Desc {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.m[name]; ok {
		return d
	}
	if c.m == nil {
		c.m = make(map[string]*prometheus.Desc)
	}
	d := prometheus.NewDesc(name, help, labels, nil)
	c.m[name] = d
	return d
}

// readUint reads a file holding a single unsigned integer (sysfs style).
func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}
