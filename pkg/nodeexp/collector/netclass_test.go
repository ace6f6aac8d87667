package collector

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nodekit/nodekit/pkg/nodeexp"
)

func openFDCount(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func writeIface(t *testing.T, sys, dev string, mtu int) {
	t.Helper()
	dir := filepath.Join(sys, "class", "net", dev)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{
		"operstate": "up", "mtu": fmt.Sprint(mtu), "flags": "0x1003", "address": "02:00:00:00:00:01",
		"carrier_changes": "3", "speed": "1000", "ifindex": "2", "type": "1",
	} {
		// Rewritten in place, as sysfs regenerates a value: same inode.
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNetclassKeepsFilesOpen checks what keeping attribute files open must
// not change: values are read afresh, new interfaces appear, removed ones
// disappear and their files are closed, at most maxOpenIfaces interfaces
// hold files, and Close releases them all.
func TestNetclassKeepsFilesOpen(t *testing.T) {
	sys := t.TempDir()
	cfg := DefaultConfig()
	cfg.SysPath = sys
	writeIface(t, sys, "eth0", 1500)
	before := openFDCount(t)
	col, err := newNetclassCollector(&cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	c := col.(*netclassCollector)
	t.Cleanup(func() { c.Close() })
	scrape := func() string {
		t.Helper()
		ch := nodeexp.NewSink(1000)
		if err := c.Update(context.Background(), ch); err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, m := range ch.Metrics() {
			if strings.Contains(m.Desc().String(), `"node_network_mtu_bytes"`) {
				lines = append(lines, fmt.Sprint(testutil.ToFloat64(constCollector{m})))
			}
		}
		return strings.Join(lines, ",")
	}
	perIface := 8 // the attributes writeIface creates
	if got := scrape(); got != "1500" {
		t.Errorf("first scrape: mtu %q, want 1500", got)
	}
	writeIface(t, sys, "eth0", 9001)
	if got := scrape(); got != "9001" {
		t.Errorf("after a change: mtu %q, want 9001 (read afresh)", got)
	}
	if got := openFDCount(t) - before; got != perIface {
		t.Errorf("holding %d descriptors for one interface, want %d", got, perIface)
	}
	for i := range maxOpenIfaces + 3 {
		writeIface(t, sys, fmt.Sprintf("eth%d", i+1), 1400)
	}
	if got := strings.Count(scrape(), ",") + 1; got != maxOpenIfaces+4 {
		t.Errorf("reported %d interfaces, want %d", got, maxOpenIfaces+4)
	}
	if got := openFDCount(t) - before; got != maxOpenIfaces*perIface {
		t.Errorf("holding %d descriptors, want %d (maxOpenIfaces interfaces)", got, maxOpenIfaces*perIface)
	}
	for i := range maxOpenIfaces + 4 {
		if i == 0 {
			continue
		}
		if err := os.RemoveAll(filepath.Join(sys, "class", "net", fmt.Sprintf("eth%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if got := scrape(); got != "9001" {
		t.Errorf("after removals: mtu %q, want only eth0's 9001", got)
	}
	if got := openFDCount(t) - before; got != perIface {
		t.Errorf("after removals: holding %d descriptors, want %d", got, perIface)
	}
	c.Close()
	if got := openFDCount(t) - before; got != 0 {
		t.Errorf("after Close: holding %d descriptors, want 0", got)
	}
}

// constCollector lets testutil read one metric.
type constCollector struct{ m prometheus.Metric }

func (c constCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.Desc() }
func (c constCollector) Collect(ch chan<- prometheus.Metric) { ch <- c.m }
