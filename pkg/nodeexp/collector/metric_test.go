package collector

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/procfs"

	"github.com/nodekit/nodekit/pkg/nodeexp"
	"github.com/nodekit/nodekit/pkg/nodeexp/constmetric"
)

// TestSeriesCache checks that cached series write what NewConstMetric
// writes, that invalid label values still fail only their series and are
// not cached, and that the cache stays bounded.
func TestSeriesCache(t *testing.T) {
	desc := constmetric.NewDesc("node_x", "x", []string{"zone", "device"}, nil)
	var s seriesCache
	write := func(m prometheus.Metric) (*dto.Metric, error) {
		var d dto.Metric
		return &d, m.Write(&d)
	}
	for i, tc := range []struct {
		values []string
		typ    prometheus.ValueType
		v      float64
	}{
		{[]string{"a", "eth0"}, prometheus.CounterValue, 1},
		{[]string{"a", "eth0"}, prometheus.CounterValue, 2}, // hit
		{[]string{"b", "eth0"}, prometheus.GaugeValue, 3},
		{[]string{"a", "eth0"}, prometheus.UntypedValue, 4}, // hit, another type
	} {
		ch := nodeexp.NewSink(1)
		s.send(ch, desc, tc.typ, tc.v, tc.values...)
		got, err := write(ch.Metrics()[len(ch.Metrics())-1])
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		want, err := write(prometheus.MustNewConstMetric(desc.Desc(), tc.typ, tc.v, tc.values...))
		if err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("%d: cached series wrote %v, NewConstMetric %v", i, got, want)
		}
	}
	if s.n != 2 {
		t.Errorf("cache holds %d series, want 2", s.n)
	}
	ch := nodeexp.NewSink(1)
	s.send(ch, desc, prometheus.GaugeValue, 1, "a", "\xff")
	if _, err := write(ch.Metrics()[len(ch.Metrics())-1]); err == nil {
		t.Error("invalid UTF-8 label value: no error")
	}
	if s.n != 2 {
		t.Errorf("an invalid series was cached")
	}
	for i := range maxCachedSeries + 10 {
		s.send(ch, desc, prometheus.GaugeValue, 1, "z", fmt.Sprint(i))
		ch.Reset()
	}
	if s.n > maxCachedSeries {
		t.Errorf("cache holds %d series, more than %d", s.n, maxCachedSeries)
	}
}

// TestSeriesCacheSharesPairsByLayout checks that families with the same
// label layout share one set of pairs per series, each still writing what
// NewConstMetric writes, and that other layouts (other label names, their
// order, a constant label) get sets of their own.
func TestSeriesCacheSharesPairsByLayout(t *testing.T) {
	size := constmetric.NewDesc("node_filesystem_size_bytes", "size", []string{"device", "mountpoint"}, nil)
	free := constmetric.NewDesc("node_filesystem_free_bytes", "free", []string{"device", "mountpoint"}, nil)
	swapped := constmetric.NewDesc("node_x", "x", []string{"mountpoint", "device"}, nil)
	renamed := constmetric.NewDesc("node_y", "y", []string{"device", "mount"}, nil)
	withConst := constmetric.NewDesc("node_z", "z", []string{"device", "mountpoint"}, prometheus.Labels{"a": "b"})
	var s seriesCache
	pairsOf := func(d *constmetric.Desc) []*dto.LabelPair {
		ch := nodeexp.NewSink(1)
		s.send(ch, d, prometheus.GaugeValue, 1, "/dev/sda1", "/")
		m := ch.Metrics()[0]
		var got, want dto.Metric
		if err := m.Write(&got); err != nil {
			t.Fatal(err)
		}
		if err := prometheus.MustNewConstMetric(d.Desc(), prometheus.GaugeValue, 1, "/dev/sda1", "/").Write(&want); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("%s: cached series wrote %v, NewConstMetric %v", d.Name(), &got, &want)
		}
		_, _, pairs := m.(*constmetric.Metric).Sample()
		return pairs
	}
	a, b := pairsOf(size), pairsOf(free)
	if &a[0] != &b[0] {
		t.Error("two families with the same labels hold a set of pairs each")
	}
	for _, d := range []*constmetric.Desc{swapped, renamed, withConst} {
		if p := pairsOf(d); &p[0] == &a[0] {
			t.Errorf("%s shares the pairs of another layout", d.Name())
		}
	}
	if s.n != 4 {
		t.Errorf("cache holds %d sets of pairs, want 4", s.n)
	}
}

// TestMeminfoLearnsKeys checks that scrapes after the first, which only
// parse numbers for keys learnt before, report what parseMeminfo reports,
// and that a changed or malformed file goes through parseMeminfo again.
func TestMeminfoLearnsKeys(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "meminfo")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := &meminfoCollector{path: path, fields: map[string]*meminfoKey{}}
	scrape := func() (string, error) {
		ch := nodeexp.NewSink(100)
		err := c.Update(context.Background(), ch)
		var lines []string
		for _, m := range ch.Metrics() {
			var d dto.Metric
			if err := m.Write(&d); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, fmt.Sprintf("%s %g", m.(*constmetric.Metric).Family().Name(), d.GetGauge().GetValue()))
		}
		return strings.Join(lines, "\n"), err
	}
	const base = "MemTotal:       1000 kB\nActive(anon):     10 kB\nActive_anon:      20 kB\nHugePages_Total:   3\nBad-Name:          4\n"
	const want = "node_memory_MemTotal_bytes 1.024e+06\nnode_memory_Active_anon_bytes 10240\nnode_memory_HugePages_Total 3"
	write(base)
	for i := range 3 {
		got, err := scrape()
		if err != nil || got != want {
			t.Fatalf("scrape %d: %v\n%s\nwant\n%s", i, err, got, want)
		}
	}
	write(strings.Replace(base, "1000", "2000", 1) + "NewField:          5 kB\n")
	got, err := scrape()
	if want2 := strings.Replace(want, "1.024e+06", "2.048e+06", 1) + "\nnode_memory_NewField_bytes 5120"; err != nil || got != want2 {
		t.Fatalf("after a new field: %v\n%s\nwant\n%s", err, got, want2)
	}
	write(strings.Replace(base, "1000 kB", "1000 MB", 1))
	if _, err := scrape(); err == nil {
		t.Error("unknown unit: no error")
	}
	write(strings.Replace(base, "1000", "x", 1))
	if _, err := scrape(); err == nil {
		t.Error("malformed value: no error")
	}
}

// TestNetstatFastPathMatchesParse checks the netstat collector's number-only
// parse against parseNetStats on the fixtures and on this machine, over two
// scrapes (the second uses the fields learnt in the first).
func TestNetstatFastPathMatchesParse(t *testing.T) {
	for name, proc := range map[string]string{"fixtures": "testdata/fixtures/proc", "this machine": "/proc"} {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.ProcPath = proc
			col, err := newNetstatCollector(&cfg, discard())
			if err != nil {
				t.Fatal(err)
			}
			c := col.(*netstatCollector)
			var want []string
			for _, f := range []string{"net/netstat", "net/snmp"} {
				b, err := os.ReadFile(filepath.Join(proc, f))
				if err != nil {
					t.Fatal(err)
				}
				st, err := parseNetStats(b, c.fields)
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range st {
					want = append(want, "node_netstat_"+s.proto+"_"+s.field)
				}
			}
			for i := range 2 {
				ch := nodeexp.NewSink(1000)
				if err := c.Update(context.Background(), ch); err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, m := range ch.Metrics() {
					info := struct{ name string }{m.(*constmetric.Metric).Family().Name()}
					if !strings.HasPrefix(info.name, "node_netstat_Ip6") && !strings.HasPrefix(info.name, "node_netstat_Icmp6") && !strings.HasPrefix(info.name, "node_netstat_Udp6") && !strings.HasPrefix(info.name, "node_netstat_UdpLite6") {
						got = append(got, info.name)
					}
				}
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("scrape %d: fields\n%v\nwant\n%v", i, got, want)
				}
			}
		})
	}
}

// TestProcStatMatchesProcfs compares parseProcStat with procfs' parser on
// the fixture and on a copy of this machine's /proc/stat, and checks that
// malformed numbers fail as in procfs.
func TestProcStatMatchesProcfs(t *testing.T) {
	live, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	fixture, err := os.ReadFile("testdata/fixtures/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		content string
		wantErr bool
	}{
		"fixture":       {string(fixture), false},
		"this machine":  {string(live), false},
		"old kernel":    {"cpu0 1 2 3 4\nbtime 5\n", false},
		"bad cpu value": {"cpu0 1 x 3\n", true},
		"bad cpu id":    {"cpuX 1 2 3\n", true},
		"bad counter":   {"ctxt many\n", true},
		"short lines":   {"ctxt\n\nprocesses 3\n", false},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			fs, err := procfs.NewFS(dir)
			if err != nil {
				t.Fatal(err)
			}
			want, wantErr := fs.Stat()
			got, gotErr := parseProcStat([]byte(tc.content))
			if (gotErr != nil) != tc.wantErr || (wantErr != nil) != tc.wantErr {
				t.Fatalf("errors: ours %v, procfs %v; want error: %v", gotErr, wantErr, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if !maps.Equal(got.cpu, want.CPU) {
				t.Errorf("cpu: ours %v, procfs %v", got.cpu, want.CPU)
			}
			for _, f := range []struct {
				name      string
				got, want uint64
			}{
				{"intr", got.intr, want.IRQTotal}, {"ctxt", got.ctxt, want.ContextSwitches}, {"btime", got.btime, want.BootTime},
				{"processes", got.processes, want.ProcessCreated}, {"running", got.running, want.ProcessesRunning},
				{"blocked", got.blocked, want.ProcessesBlocked},
			} {
				if f.got != f.want {
					t.Errorf("%s: ours %d, procfs %d", f.name, f.got, f.want)
				}
			}
		})
	}
}
