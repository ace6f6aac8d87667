package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nodekit/nodekit/test/agentproc"
)

// nodeExporterVersion is the release nodeexp is compared with.
const nodeExporterVersion = "v1.12.1"

// nodeExporterBinary returns node_exporter built from the Go module proxy
// into a cache outside the repository, building it on first use.
func nodeExporterBinary(ctx context.Context, logger *slog.Logger) (string, error) {
	if p := os.Getenv("NODE_EXPORTER_BIN"); p != "" {
		return p, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for node_exporter: %w", err)
	}
	bin := filepath.Join(cache, "nodekit", "bin")
	p := filepath.Join(bin, "node_exporter")
	if builtVersion(ctx, p) == nodeExporterVersion {
		return p, nil
	}
	logger.Info("building node_exporter from the Go module proxy", "version", nodeExporterVersion, "gobin", bin)
	tmp, err := os.MkdirTemp("", "nodekit-bench-ne-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/prometheus/node_exporter@"+nodeExporterVersion)
	cmd.Dir = tmp // outside this module: its go.mod stays untouched
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building node_exporter %s from the Go module proxy: %w\n%s", nodeExporterVersion, err, tailString(string(out), 2000))
	}
	if v := builtVersion(ctx, p); v != nodeExporterVersion {
		return "", fmt.Errorf("%s reports module version %q after go install, want %s", p, v, nodeExporterVersion)
	}
	return p, nil
}

// builtVersion reads the main module version `go version -m` finds in bin
// (go install leaves node_exporter's own --version blank).
func builtVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, "go", "version", "-m", bin).Output()
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && f[0] == "mod" && f[1] == "github.com/prometheus/node_exporter" {
			return f[2]
		}
	}
	return ""
}

var (
	// nodeexp's --help (Go flag package): "  -collector.arp" then
	// "    \tEnable the arp collector (default: enabled)."
	neFlagLine    = regexp.MustCompile(`^\s+-collector\.([a-z0-9_]+)$`)
	neOptionLine  = regexp.MustCompile(`^\s+-collector\.([a-z0-9_]+\.[a-z0-9_.\-]+) string$`)
	neDefaultText = regexp.MustCompile(`\(default ("(?:[^"\\]|\\.)*")\)`)
	// node_exporter's --help (kingpin).
	kpCollector = regexp.MustCompile(`--\[no-\]collector\.([a-z0-9_]+)\s`)
	kpOption    = regexp.MustCompile(`--collector\.([a-z0-9_]+\.[a-z0-9_.\-]+)=`)
)

// collectorFlags works out the comparison's command lines from both
// programs' --help: the collectors nodeexp enables by default that
// node_exporter also has (minus pods), and nodeexp's default for every
// string option both share, so both scrape the same things.
func collectorFlags(nodeexpHelp, neHelp string) (shared []string, nodeexpArgs, neArgs []string) {
	neCollectors := map[string]bool{}
	for _, m := range kpCollector.FindAllStringSubmatch(neHelp, -1) {
		neCollectors[m[1]] = true
	}
	neOptions := map[string]bool{}
	for _, m := range kpOption.FindAllStringSubmatch(neHelp, -1) {
		neOptions[m[1]] = true
	}
	lines := strings.Split(nodeexpHelp, "\n")
	neArgs = []string{"--collector.disable-defaults"}
	for i, l := range lines {
		next := ""
		if i+1 < len(lines) {
			next = lines[i+1]
		}
		if m := neFlagLine.FindStringSubmatch(l); m != nil && strings.Contains(next, "(default: enabled)") {
			name := m[1]
			if name != "pods" && neCollectors[name] {
				shared = append(shared, name)
				neArgs = append(neArgs, "--collector."+name)
			} else {
				nodeexpArgs = append(nodeexpArgs, "--no-collector."+name)
			}
			continue
		}
		if m := neOptionLine.FindStringSubmatch(l); m != nil && neOptions[m[1]] {
			if d := neDefaultText.FindStringSubmatch(next); d != nil {
				if v, err := strconv.Unquote(d[1]); err == nil {
					neArgs = append(neArgs, "--collector."+m[1]+"="+v)
				}
			}
		}
	}
	slices.Sort(shared)
	return shared, nodeexpArgs, neArgs
}

// exporter is a running exporter on a loopback listener the bench owns,
// passed by systemd socket activation so no port number is guessed.
type exporter struct {
	name string
	url  string
	proc *agentproc.Proc
}

func startExporter(dir, name, bin string, args []string) (*exporter, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	// LISTEN_PID must be the exporter's own PID: sh sets it to $$ and execs.
	shArgs := append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, bin, "--web.systemd-socket"}, args...)
	p, err := agentproc.Start(agentproc.Root{}, agentproc.Spec{Name: name, Bin: "sh", Args: shArgs,
		Env: append(os.Environ(), "LISTEN_FDS=1"), LogDir: dir, ExtraFiles: []*os.File{lf}})
	if err != nil {
		return nil, err
	}
	return &exporter{name: name, url: "http://" + ln.Addr().String() + "/metrics", proc: p}, nil
}

// scrape fetches /metrics as Prometheus does (gzip) and counts samples.
func scrape(ctx context.Context, hc *http.Client, url string) (samples int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", url, resp.Status)
	}
	for l := range bytes.SplitSeq(body, []byte("\n")) {
		if len(l) > 0 && l[0] != '#' {
			samples++
		}
	}
	return samples, nil
}

// waitScrape polls an exporter until its first scrape succeeds (a bounded
// poll on a process becoming ready).
func waitScrape(ctx context.Context, hc *http.Client, e *exporter) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := scrape(ctx, hc, e.url)
		if err == nil {
			return nil
		}
		select {
		case <-e.proc.Done():
			_, err := e.proc.Exited()
			return fmt.Errorf("%s exited (%v):\n%s", e.name, err, e.proc.Tail(40))
		case <-ctx.Done():
			return fmt.Errorf("%s never answered a scrape: %w\n%s", e.name, err, e.proc.Tail(40))
		case <-tick.C:
		}
	}
}

// benchNodeexp compares nodeexp with node_exporter: CPU per scrape and RSS.
func benchNodeexp(ctx context.Context, r *report, cfg config, logger *slog.Logger) (s *section) {
	s = &section{Title: "nodeexp against node_exporter " + nodeExporterVersion}
	const (
		cpuGoal = "≤ 0.5× node_exporter"
		rssGoal = "≤ 0.7× node_exporter"
	)
	measured := false
	defer func() {
		if !measured {
			r.notMeasured("nodeexp", "CPU per scrape vs node_exporter "+nodeExporterVersion, cpuGoal, s.Err)
			r.notMeasured("nodeexp", "RSS vs node_exporter "+nodeExporterVersion, rssGoal, s.Err)
		}
	}()
	fail := func(err error) *section { s.Err = err; return s }

	neBin, err := nodeExporterBinary(ctx, logger)
	if err != nil {
		s.addf("node_exporter %s could not be built from the Go module proxy, so nodeexp was not compared:\n\n```\n%s\n```", nodeExporterVersion, tailString(err.Error(), 1500))
		return fail(err)
	}
	nodeexpBin := cfg.bin("nodeexp")
	nodeexpHelp, _ := exec.CommandContext(ctx, nodeexpBin, "--help").CombinedOutput()
	neHelp, _ := exec.CommandContext(ctx, neBin, "--help").CombinedOutput()
	shared, nodeexpArgs, neArgs := collectorFlags(string(nodeexpHelp), string(neHelp))
	if len(shared) == 0 {
		return fail(fmt.Errorf("no collector in common found in the two programs' --help"))
	}
	dir, err := os.MkdirTemp("", "nodekit-bench-nodeexp-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)

	ours, err := startExporter(dir, "nodeexp", nodeexpBin, append(nodeexpArgs, "--log-level=error"))
	if err != nil {
		return fail(err)
	}
	defer ours.proc.Stop(stopGrace)
	theirs, err := startExporter(dir, "node_exporter", neBin, append(neArgs, "--log.level=error"))
	if err != nil {
		return fail(err)
	}
	defer theirs.proc.Stop(stopGrace)
	hc := &http.Client{Timeout: 30 * time.Second}
	for _, e := range []*exporter{ours, theirs} {
		if err := waitScrape(ctx, hc, e); err != nil {
			return fail(err)
		}
	}
	// Warm up (first scrapes fill caches), then alternate.
	for range 3 {
		for _, e := range []*exporter{ours, theirs} {
			if _, err := scrape(ctx, hc, e.url); err != nil {
				return fail(err)
			}
		}
	}
	logger.Info("nodeexp: alternating scrapes", "scrapes", cfg.scrapes)
	type tally struct {
		cpu     time.Duration
		lat     []time.Duration
		samples int
	}
	t := map[*exporter]*tally{ours: {}, theirs: {}}
	before := map[*exporter]time.Duration{}
	for _, e := range []*exporter{ours, theirs} {
		if before[e], err = readCPU(e.proc.Pid()); err != nil {
			return fail(err)
		}
	}
	for i := range cfg.scrapes {
		order := []*exporter{ours, theirs}
		if i%2 == 1 {
			order = []*exporter{theirs, ours}
		}
		for _, e := range order {
			t0 := time.Now()
			n, err := scrape(ctx, hc, e.url)
			if err != nil {
				return fail(fmt.Errorf("scrape %d of %s: %w", i, e.name, err))
			}
			t[e].lat = append(t[e].lat, time.Since(t0))
			t[e].samples = n
		}
	}
	mem := map[*exporter]memStatus{}
	for _, e := range []*exporter{ours, theirs} {
		after, err := readCPU(e.proc.Pid())
		if err != nil {
			return fail(err)
		}
		t[e].cpu = after - before[e]
		if mem[e], err = readMem(e.proc.Pid()); err != nil {
			return fail(err)
		}
	}
	if t[theirs].cpu <= 0 || mem[theirs].RSS <= 0 {
		return fail(errors.New("node_exporter used no measurable CPU or memory"))
	}
	// Prometheus scrapes every 15 to 30 s: what each holds between two
	// scrapes is what a node pays most of the time (the verdict stays on the
	// figure right after the scrapes, as issue 9 asks).
	const between = 12 * time.Second
	select {
	case <-time.After(between):
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	later := map[*exporter]memStatus{}
	for _, e := range []*exporter{ours, theirs} {
		if later[e], err = readMem(e.proc.Pid()); err != nil {
			return fail(err)
		}
	}
	// Stopped first, so the floor below runs on a machine as quiet as theirs.
	ours.proc.Stop(stopGrace)
	theirs.proc.Stop(stopGrace)
	floor, floorErr := measureMinExporter(ctx, hc, dir, cfg.scrapes)
	n := time.Duration(cfg.scrapes)
	cpuRatio := float64(t[ours].cpu) / float64(t[theirs].cpu)
	rssRatio := float64(mem[ours].RSS) / float64(mem[theirs].RSS)
	peakRatio := float64(mem[ours].Peak) / float64(mem[theirs].Peak)
	measured = true
	r.add(figure{Agent: "nodeexp", Name: "CPU per scrape vs node_exporter " + nodeExporterVersion,
		Measured: fmt.Sprintf("%.3f× (%.2f vs %.2f ms)", cpuRatio, ms(t[ours].cpu/n), ms(t[theirs].cpu/n)), Goal: cpuGoal,
		Verdict: atMost(cpuRatio, 0.5), Note: fmt.Sprintf("%d alternating scrapes each, same %d collectors", cfg.scrapes, len(shared))})
	r.add(figure{Agent: "nodeexp", Name: "RSS vs node_exporter " + nodeExporterVersion,
		Measured: fmt.Sprintf("%.3f× (%.1f vs %.1f MiB)", rssRatio, mib(mem[ours].RSS), mib(mem[theirs].RSS)), Goal: rssGoal,
		Verdict: atMost(rssRatio, 0.7), Note: fmt.Sprintf("VmRSS after the scrapes; peak (VmHWM) ratio %.2f×", peakRatio)})

	s.addf("Both exporters run as processes in the root namespace on loopback listeners handed over by socket activation, with")
	s.addf("the same %d collectors (%s) and nodeexp's defaults (kube-prometheus's) for every exclude option both share;", len(shared), strings.Join(shared, ", "))
	s.addf("after 3 warm-up scrapes each, %d scrapes of each alternate (gzip, as Prometheus asks). CPU is each process's", cfg.scrapes)
	s.addf("utime+stime over the scrapes, from /proc/<pid>/stat (10 ms ticks).\n")
	s.addf("| Exporter | CPU per scrape | scrape p50 | scrape p99 | samples | VmRSS | of which file-backed | VmHWM |")
	s.addf("|---|---|---|---|---|---|---|---|")
	for _, e := range []*exporter{ours, theirs} {
		l := summarise(t[e].lat)
		s.addf("| %s | %.2f ms | %.2f ms | %.2f ms | %d | %.1f MiB | %.1f MiB | %.1f MiB |", e.name, ms(t[e].cpu/n), ms(l.P50), ms(l.P99), t[e].samples, mib(mem[e].RSS), mib(mem[e].File), mib(mem[e].Peak))
	}
	s.addf("\n\"File-backed\" is RssFile: pages of the executable (and other mapped files) in memory; the rest is heap and stacks.")
	s.addf("\n%s after the last scrape, as between two Prometheus scrapes: nodeexp %.1f MiB, node_exporter %.1f MiB (%.2f×); nodeexp", between, mib(later[ours].RSS), mib(later[theirs].RSS),
		float64(later[ours].RSS)/float64(later[theirs].RSS))
	s.addf("hands its free heap back to the OS once a scrape's work is over (pkg/memtrim).")
	if floorErr != nil {
		s.addf("\nThe minimal exporter (test/bench/minexporter) could not be measured: %v", floorErr)
	} else {
		budget := 0.7 * float64(mem[theirs].RSS)
		s.addf("\nWhat the prescribed libraries cost alone: test/bench/minexporter serves one procfs collector (node_cpu_seconds_total)")
		s.addf("through exporter-toolkit with client_golang's Go and process collectors, built like nodeexp. After the same %d scrapes", cfg.scrapes)
		s.addf("it holds %.1f MiB (%.1f MiB file-backed), %.2f× node_exporter: %.0f%% of the %.1f MiB that ≤ 0.7× allows, before any", mib(floor.RSS), mib(floor.File),
			float64(floor.RSS)/float64(mem[theirs].RSS), 100*float64(floor.RSS)/budget, mib(int64(budget)))
		s.addf("of nodeexp's %d collectors, its exposition or its pod collector.", len(shared))
	}
	s.addf("\nnode_exporter's command line: `%s`", strings.Join(append([]string{"node_exporter"}, neArgs...), " "))
	s.addf("\nnodeexp's: `%s`", strings.Join(append([]string{"nodeexp"}, nodeexpArgs...), " "))
	return s
}

// measureMinExporter builds and runs test/bench/minexporter, scrapes it as
// the comparison above scraped nodeexp, and returns its memory after.
func measureMinExporter(ctx context.Context, hc *http.Client, dir string, scrapes int) (memStatus, error) {
	bin := filepath.Join(dir, "minexporter")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./test/bench/minexporter")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return memStatus{}, fmt.Errorf("building: %w\n%s", err, out)
	}
	e, err := startExporter(dir, "minexporter", bin, nil)
	if err != nil {
		return memStatus{}, err
	}
	defer e.proc.Stop(stopGrace)
	if err := waitScrape(ctx, hc, e); err != nil {
		return memStatus{}, err
	}
	for i := range scrapes + 3 {
		if _, err := scrape(ctx, hc, e.url); err != nil {
			return memStatus{}, fmt.Errorf("scrape %d: %w", i, err)
		}
	}
	return readMem(e.proc.Pid())
}
