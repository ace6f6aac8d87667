package collector

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// mixinMetric is one line of testdata/node-mixin-metrics.txt.
type mixinMetric struct {
	name     string
	labels   string // sorted, comma-separated
	optional bool
}

func readMixinMetrics(t *testing.T) []mixinMetric {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "node-mixin-metrics.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []mixinMetric
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var m mixinMetric
		if rest, ok := strings.CutPrefix(line, "optional "); ok {
			m.optional, line = true, rest
		}
		m.name, m.labels, _ = strings.Cut(line, " ")
		out = append(out, m)
	}
	return out
}

// labelNames returns the sorted label names of each series of a family,
// deduplicated, as "a,b" strings.
func labelNames(mf *dto.MetricFamily) []string {
	set := map[string]bool{}
	for _, m := range mf.Metric {
		var n []string
		for _, l := range m.Label {
			n = append(n, l.GetName())
		}
		slices.Sort(n)
		set[strings.Join(n, ",")] = true
	}
	return slices.Sorted(maps.Keys(set))
}

func liveFamilies(t *testing.T, cfg Config) map[string]*dto.MetricFamily {
	t.Helper()
	e := newExporter(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mfs, err := e.Gatherer(ctx).Gather()
	if err != nil {
		t.Fatalf("gathering from the live machine: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// TestLiveNodeMixinMetrics scrapes this machine and checks that every
// series the node-mixin reads is there with node_exporter's label names.
func TestLiveNodeMixinMetrics(t *testing.T) {
	got := liveFamilies(t, DefaultConfig())
	for _, m := range readMixinMetrics(t) {
		mf, ok := got[m.name]
		switch {
		case !ok && m.optional:
			t.Logf("%s: not emitted (optional: needs a collector nodeexp does not have)", m.name)
		case !ok && m.name == "node_nf_conntrack_entries" || !ok && m.name == "node_nf_conntrack_entries_limit":
			if _, err := os.Stat("/proc/sys/net/netfilter/nf_conntrack_count"); err == nil {
				t.Errorf("%s missing although conntrack is loaded", m.name)
			}
		case !ok:
			t.Errorf("%s: not emitted", m.name)
		default:
			if ls := labelNames(mf); len(ls) != 1 || ls[0] != m.labels {
				t.Errorf("%s: label names %q, want [%q]", m.name, ls, m.labels)
			}
		}
	}
}

// nodeExporterBinary returns node_exporter v1.12.1, building it from the Go
// module proxy into a cache outside the repository when it is not there yet.
func nodeExporterBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("NODE_EXPORTER_BIN"); p != "" {
		return p
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Skipf("no cache directory for node_exporter: %v", err)
	}
	bin := filepath.Join(cache, "nodekit", "bin")
	p := filepath.Join(bin, "node_exporter")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if testing.Short() {
		t.Skip("node_exporter not built yet and -short given")
	}
	cmd := exec.Command("go", "install", "github.com/prometheus/node_exporter@v1.12.1")
	cmd.Dir = t.TempDir() // outside this module, so its go.mod is untouched
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("cannot build node_exporter v1.12.1 from the module proxy: %v\n%s", err, out)
	}
	return p
}

// scrapeNodeExporter runs node_exporter with exactly the given collectors on
// a listener this test owns (passed by systemd socket activation, so no port
// is guessed) and returns one scrape.
func scrapeNodeExporter(t *testing.T, bin string, collectors []string) map[string]*dto.MetricFamily {
	t.Helper()
	args := []string{"--collector.disable-defaults"}
	for _, c := range collectors {
		args = append(args, "--collector."+c)
	}
	return scrapeNodeExporterWith(t, bin, args)
}

// scrapeNodeExporterWith runs node_exporter with args and returns one scrape.
func scrapeNodeExporterWith(t *testing.T, bin string, args []string) map[string]*dto.MetricFamily {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	args = append([]string{"--web.systemd-socket", "--log.level=error"}, args...)
	// LISTEN_PID must be the exporter's own PID: sh sets it to $$ and execs.
	cmd := exec.Command("sh", append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, bin}, args...)...)
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1")
	cmd.ExtraFiles = []*os.File{lf}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	// The listener already accepts connections; the request waits in the
	// backlog until node_exporter serves it.
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatalf("scraping node_exporter: %v", err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing node_exporter output: %v", err)
	}
	return mfs
}

// TestLiveSideBySideWithNodeExporter runs node_exporter v1.12.1 and nodeexp
// with the same collectors on this machine and compares every family
// node_exporter emits: name, type, help, label names, and the values that
// do not move between two scrapes.
func TestLiveSideBySideWithNodeExporter(t *testing.T) {
	bin := nodeExporterBinary(t)
	cfg := DefaultConfig()
	// node_exporter's own defaults, so both see the same devices and mounts.
	cfg.MountPointsExclude = `^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)`
	cfg.NetdevDeviceExclude = `^$`
	cfg.NetclassIgnoredDevices = `^$`
	var names []string
	for n := range factories() {
		if !defaultOff[n] {
			names = append(names, n)
		}
	}
	want := scrapeNodeExporter(t, bin, names)
	got := liveFamilies(t, cfg)

	for name, w := range want {
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "promhttp_") || name == "node_exporter_build_info" {
			continue
		}
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: emitted by node_exporter, not by nodeexp", name)
			continue
		}
		if g.GetType() != w.GetType() {
			t.Errorf("%s: type %v, node_exporter %v", name, g.GetType(), w.GetType())
		}
		if g.GetHelp() != w.GetHelp() {
			t.Errorf("%s: help %q, node_exporter %q", name, g.GetHelp(), w.GetHelp())
		}
		if gl, wl := labelNames(g), labelNames(w); !slices.Equal(gl, wl) {
			t.Errorf("%s: label names %q, node_exporter %q", name, gl, wl)
		}
	}
	value := func(mfs map[string]*dto.MetricFamily, name string, match func(*dto.Metric) bool) (float64, int) {
		mf, ok := mfs[name]
		if !ok {
			return 0, 0
		}
		n, v := 0, 0.0
		for _, m := range mf.Metric {
			if match(m) {
				n++
				v = m.GetGauge().GetValue() + m.GetCounter().GetValue() + m.GetUntyped().GetValue()
			}
		}
		return v, n
	}
	all := func(*dto.Metric) bool { return true }
	root := func(m *dto.Metric) bool {
		for _, l := range m.Label {
			if l.GetName() == "mountpoint" {
				return l.GetValue() == "/"
			}
		}
		return false
	}
	for _, c := range []struct {
		name  string
		match func(*dto.Metric) bool
	}{
		{"node_memory_MemTotal_bytes", all},
		{"node_memory_SwapTotal_bytes", all},
		{"node_filesystem_size_bytes", root},
		{"node_cpu_seconds_total", all},
		{"node_filefd_maximum", all},
		{"node_nf_conntrack_entries_limit", all},
	} {
		wv, wn := value(want, c.name, c.match)
		gv, gn := value(got, c.name, c.match)
		if wn != gn {
			t.Errorf("%s: %d series, node_exporter %d", c.name, gn, wn)
		}
		if c.name != "node_cpu_seconds_total" && wv != gv {
			t.Errorf("%s: %v, node_exporter %v", c.name, gv, wv)
		}
	}
	fmt.Fprintf(os.Stderr, "compared %d node_exporter families\n", len(want))
}

// TestLiveCollectorOptions runs both exporters on this machine with the
// collector options that change families or labels, and compares each
// family node_exporter emits: type, help, label names, and the series'
// label sets of the options' families.
func TestLiveCollectorOptions(t *testing.T) {
	bin := nodeExporterBinary(t)
	for _, tc := range []struct {
		name   string
		args   []string
		series []string // families whose series (label sets) must agree
		// extra are families only nodeexp reports, with why.
		extra map[string]string
	}{
		{"netdev detailed, addresses, ifalias", []string{"--collector.netdev", "--no-collector.netdev.netlink",
			"--collector.netdev.enable-detailed-metrics", "--collector.netdev.address-info", "--collector.netdev.label-ifalias",
			"--collector.netdev.device-exclude="}, []string{"node_network_address_info", "node_network_receive_errors_total"},
			map[string]string{"node_network_receive_nohandler_total": "nodeexp reads it from sysfs, as node_exporter's default netlink mode reports it; its /proc/net/dev mode, needed here, has none"}},
		{"cpu info", []string{"--collector.cpu", "--collector.cpufreq", "--collector.cpu.info",
			"--collector.cpu.info.flags-include=^(aes|avx.?|constant_tsc)$", "--collector.cpu.info.bugs-include=."},
			[]string{"node_cpu_info", "node_cpu_flag_info", "node_cpu_bug_info", "node_cpu_frequency_hertz"}, nil},
		{"cpu without guest", []string{"--collector.cpu", "--no-collector.cpu.guest"}, nil, nil},
		{"stat softirq", []string{"--collector.stat", "--collector.stat.softirq"}, []string{"node_softirqs_total"}, nil},
		{"rapl zone label", []string{"--collector.rapl", "--collector.rapl.enable-zone-label"}, nil, nil},
		{"ethtool", []string{"--collector.ethtool", "--collector.ethtool.device-exclude=^(veth|cali).*"},
			[]string{"node_ethtool_info", "node_network_supported_speed_bytes", "node_network_autonegotiate"}, nil},
		{"ethtool metrics-include", []string{"--collector.ethtool", "--collector.ethtool.metrics-include=^(rx|tx)_.*packets$"}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--collector.disable-defaults"}, tc.args...)
			want := scrapeNodeExporterWith(t, bin, args)
			fs := flag.NewFlagSet("nodeexp", flag.ContinueOnError)
			cfg := DefaultConfig()
			cfg.RegisterFlags(fs)
			if err := fs.Parse(args); err != nil {
				t.Fatalf("nodeexp does not take node_exporter's flags: %v", err)
			}
			got := liveFamilies(t, cfg)
			for name, w := range want {
				if !strings.HasPrefix(name, "node_") || name == "node_exporter_build_info" {
					continue
				}
				g, ok := got[name]
				if !ok {
					t.Errorf("%s: emitted by node_exporter, not by nodeexp", name)
					continue
				}
				if g.GetType() != w.GetType() || g.GetHelp() != w.GetHelp() || !slices.Equal(labelNames(g), labelNames(w)) {
					t.Errorf("%s: %v %q %q, node_exporter %v %q %q", name, g.GetType(), g.GetHelp(), labelNames(g), w.GetType(), w.GetHelp(), labelNames(w))
				}
			}
			for name := range got {
				if _, ok := want[name]; !ok && strings.HasPrefix(name, "node_") && tc.extra[name] == "" {
					t.Errorf("%s: emitted by nodeexp, not by node_exporter", name)
				}
			}
			for _, name := range tc.series {
				if gs, ws := slices.Sorted(maps.Keys(seriesOf(got[name]))), slices.Sorted(maps.Keys(seriesOf(want[name]))); !slices.Equal(gs, ws) {
					t.Errorf("%s: series %q, node_exporter %q", name, gs, ws)
				}
			}
		})
	}
}
