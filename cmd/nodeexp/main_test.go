package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// binDir holds the binary built by builtBinary; TestMain removes it.
var binDir string

// builtBinary builds this command once per test binary run.
var builtBinary = func() func(tb testing.TB) string {
	var path string
	var err error
	var out []byte
	done := false
	return func(tb testing.TB) string {
		tb.Helper()
		if !done {
			done = true
			dir, derr := os.MkdirTemp("", "nodeexp-bin-")
			if derr != nil {
				tb.Fatal(derr)
			}
			binDir = dir
			path = filepath.Join(dir, "nodeexp")
			out, err = exec.Command("go", "build", "-o", path, ".").CombinedOutput()
		}
		if err != nil {
			tb.Fatalf("building nodeexp: %v\n%s", err, out)
		}
		return path
	}
}()

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// exporterProcess is an exporter started with a listener the test owns,
// handed over by systemd socket activation, so no port number is guessed.
type exporterProcess struct {
	url string
	cmd *exec.Cmd
}

func startExporter(tb testing.TB, bin string, args ...string) *exporterProcess {
	tb.Helper()
	return startExporterWith(tb, bin, nil, args...)
}

// startExporterWith is startExporter with setup applied to the command
// before it starts (credentials, say).
func startExporterWith(tb testing.TB, bin string, setup func(*exec.Cmd), args ...string) *exporterProcess {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		tb.Fatal(err)
	}
	defer lf.Close()
	// LISTEN_PID must be the exporter's PID: sh sets it to $$, then execs.
	cmd := exec.Command("sh", append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, bin, "--web.systemd-socket"}, args...)...)
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1")
	cmd.ExtraFiles = []*os.File{lf}
	cmd.Stderr = io.Discard
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if setup != nil {
		setup(cmd)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return &exporterProcess{url: "http://" + ln.Addr().String(), cmd: cmd}
}

func get(tb testing.TB, req *http.Request) (int, string) {
	tb.Helper()
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func mustReq(tb testing.TB, url string) *http.Request {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return req
}

func TestServesMetricsHealthAndNoPprof(t *testing.T) {
	p := startExporter(t, builtBinary(t), "--no-collector.pods", "--log-format=text")
	code, body := get(t, mustReq(t, p.url+"/metrics"))
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{"node_load1 ", `node_scrape_collector_success{collector="cpu"} 1`, "process_resident_memory_bytes ", "go_goroutines "} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	for _, c := range []struct {
		path string
		want int
	}{
		{"/healthz", http.StatusOK},
		{"/readyz", http.StatusOK}, // the first collection has run: /metrics answered
		{"/debug/pprof/", http.StatusNotFound},
	} {
		if code, body := get(t, mustReq(t, p.url+c.path)); code != c.want {
			t.Errorf("GET %s = %d, want %d\n%s", c.path, code, c.want, body)
		}
	}
}

func TestBasicAuthFromWebConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "web.yml")
	// bcrypt of "s3cret" (cost 4: fast, and only a test credential).
	if err := os.WriteFile(cfg, []byte("basic_auth_users:\n  prom: $2a$04$yp5trz1jRynms4l.FuYVxuHi2jViKMiJzzmoBshHlwLPmJZEeyvfe\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startExporter(t, builtBinary(t), "--no-collector.pods", "--web.config.file="+cfg)
	if code, _ := get(t, mustReq(t, p.url+"/metrics")); code != http.StatusUnauthorized {
		t.Errorf("without credentials: %d, want 401", code)
	}
	req := mustReq(t, p.url+"/metrics")
	req.SetBasicAuth("prom", "s3cret")
	if code, body := get(t, req); code != http.StatusOK || !strings.Contains(body, "node_load1 ") {
		t.Errorf("with credentials: %d, want 200 with metrics", code)
	}
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"defaults", nil, ""},
		{"disable a collector", []string{"--no-collector.cpu"}, ""},
		{"disable defaults", []string{"--collector.disable-defaults", "--collector.loadavg"}, ""},
		{"node_exporter path flags", []string{"--path.procfs=/host/proc", "--path.sysfs=/host/sys", "--path.rootfs=/host/root"}, ""},
		{"bad regexp", []string{"--collector.netdev.device-exclude=("}, "collector.netdev.device-exclude"},
		{"unknown collector", []string{"--collector.nope"}, "flag provided but not defined"},
		{"positional", []string{"extra"}, "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parse(tc.args, io.Discard)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("parse: %v", err)
				}
				if tc.name == "disable a collector" && o.node.Enabled("cpu") {
					t.Error("cpu still enabled")
				}
				if tc.name == "disable defaults" && (o.node.Enabled("cpu") || !o.node.Enabled("loadavg") || o.node.Enabled("pods")) {
					t.Error("--collector.disable-defaults: want only loadavg enabled")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("parse error = %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}

// processCPU returns the user+system CPU time of pid from /proc/<pid>/stat.
func processCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 of the whole line.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// peakRSS returns VmHWM of pid in bytes.
func peakRSS(tb testing.TB, pid int) float64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb * 1024
		}
	}
	return 0
}

// sameCollectors are the collectors both exporters have; node_exporter runs
// with exactly these.
var sameCollectors = []string{"arp", "conntrack", "cpu", "diskstats", "entropy", "filefd", "filesystem", "loadavg", "meminfo",
	"netclass", "netdev", "netstat", "os", "pressure", "schedstat", "sockstat", "softnet", "stat", "textfile", "time", "timex",
	"udp_queues", "uname", "vmstat"}

// BenchmarkProcessVsNodeExporter scrapes a nodeexp process and a
// node_exporter v1.12.1 process (same collectors) b.N times each and
// reports each exporter's CPU per scrape and peak RSS. Set NODE_EXPORTER_BIN
// or build it into $XDG_CACHE_HOME/nodekit/bin (pkg/nodeexp's side-by-side
// test does). Run with -benchtime=200x for the figure.
func BenchmarkProcessVsNodeExporter(b *testing.B) {
	ne := os.Getenv("NODE_EXPORTER_BIN")
	if ne == "" {
		cache, _ := os.UserCacheDir()
		ne = filepath.Join(cache, "nodekit", "bin", "node_exporter")
	}
	if _, err := os.Stat(ne); err != nil {
		b.Skipf("node_exporter not available: %v", err)
	}
	neArgs := []string{"--collector.disable-defaults", "--log.level=error"}
	for _, c := range sameCollectors {
		neArgs = append(neArgs, "--collector."+c)
	}
	procs := map[string]*exporterProcess{
		"nodeexp":       startExporter(b, builtBinary(b), "--no-collector.pods", "--log-level=error"),
		"node_exporter": startExporter(b, ne, neArgs...),
	}
	names := []string{"nodeexp", "node_exporter"}
	before := map[string]time.Duration{}
	for _, name := range names {
		get(b, mustReq(b, procs[name].url+"/metrics")) // warm up: first scrape builds caches
		before[name] = processCPU(b, procs[name].cmd.Process.Pid)
	}
	// Interleaved, so both see the same background load.
	for range b.N {
		for _, name := range names {
			if code, _ := get(b, mustReq(b, procs[name].url+"/metrics")); code != http.StatusOK {
				b.Fatalf("%s: status %d", name, code)
			}
		}
	}
	cpu := map[string]time.Duration{}
	for _, name := range names {
		cpu[name] = processCPU(b, procs[name].cmd.Process.Pid) - before[name]
	}
	n := float64(b.N)
	b.ReportMetric(float64(cpu["nodeexp"].Nanoseconds())/n, "nodeexp-cpu-ns/scrape")
	b.ReportMetric(float64(cpu["node_exporter"].Nanoseconds())/n, "node_exporter-cpu-ns/scrape")
	if cpu["node_exporter"] > 0 {
		b.ReportMetric(float64(cpu["nodeexp"])/float64(cpu["node_exporter"]), "cpu-ratio")
	}
	rn, rne := peakRSS(b, procs["nodeexp"].cmd.Process.Pid), peakRSS(b, procs["node_exporter"].cmd.Process.Pid)
	b.ReportMetric(rn, "nodeexp-peak-rss-bytes")
	b.ReportMetric(rne, "node_exporter-peak-rss-bytes")
	if rne > 0 {
		b.ReportMetric(rn/rne, "rss-ratio")
	}
}
