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

// neResults compare nodeexp with node_exporter.
type neResults struct {
	Version  string
	BuildErr string // why node_exporter could not be built
	// Compared says both ran the scrapes; the rest is set then.
	Compared     bool
	Shared       []string // collectors both run
	Scrapes      int
	Ours, Theirs neRow
	Between      time.Duration
	Floor        *memStatus // the minimal exporter's
	FloorErr     string
	OurArgs      []string
	TheirArgs    []string
}

// neRow is one exporter's figures.
type neRow struct {
	Name         string
	CPUPerScrape time.Duration
	Lat          latencies
	Samples      int
	Mem          memStatus // right after the scrapes
	Later        memStatus // Between later
}

// Rows are the two exporters, ours first.
func (n *neResults) Rows() []neRow { return []neRow{n.Ours, n.Theirs} }

// neRSSGoalRatio is the RSS goal as a fraction of node_exporter's.
const neRSSGoalRatio = 0.85

// RSSBudget is the RSS that the goal allows.
func (n *neResults) RSSBudget() float64 { return neRSSGoalRatio * float64(n.Theirs.Mem.RSS) }

// benchNodeexp compares nodeexp with node_exporter, CPU per scrape and
// RSS, into r.Nodeexp.
func benchNodeexp(ctx context.Context, r *report, cfg config, logger *slog.Logger) error {
	res := &neResults{Version: nodeExporterVersion, Scrapes: cfg.scrapes}
	r.Nodeexp = res
	fail := func(err error) error { return err }

	neBin, err := nodeExporterBinary(ctx, logger)
	if err != nil {
		res.BuildErr = tailString(err.Error(), 1500)
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
	row := func(e *exporter) neRow {
		return neRow{Name: e.name, CPUPerScrape: t[e].cpu / n, Lat: summarise(t[e].lat), Samples: t[e].samples, Mem: mem[e], Later: later[e]}
	}
	res.Compared, res.Shared, res.Between = true, shared, between
	res.Ours, res.Theirs = row(ours), row(theirs)
	res.OurArgs = append([]string{"nodeexp"}, nodeexpArgs...)
	res.TheirArgs = append([]string{"node_exporter"}, neArgs...)
	if floorErr != nil {
		res.FloorErr = floorErr.Error()
	} else {
		res.Floor = &floor
	}
	return nil
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
