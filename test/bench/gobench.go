package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// goBench names one Go benchmark owned by an agent package.
type goBench struct {
	Pkg  string // import path relative to the module, "./pkg/logship"
	Name string // "BenchmarkReadParseCRI"
	// LineBytes, when the benchmark reports no lines/op metric and one op
	// is a whole file of lines, estimates lines per op as bytes/op ÷
	// LineBytes. 0 means one op is one line.
	LineBytes float64
	// PerFile marks ops that are many lines (so allocs/line is derived).
	PerFile bool
	// NoLines marks benchmarks that do not handle log lines.
	NoLines bool
}

// benchLine is one parsed line of `go test -bench` output.
type benchLine struct {
	Name    string
	Iters   int64
	Metrics map[string]float64 // unit -> value: "ns/op", "MB/s", "B/op", "allocs/op", custom
}

// parseBenchLine parses a standard benchmark result line:
//
//	BenchmarkX-2   	     100	  11634 ns/op	  90.12 MB/s	  32 B/op	   1 allocs/op
func parseBenchLine(s string) (benchLine, bool) {
	f := strings.Fields(s)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
		return benchLine{}, false
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return benchLine{}, false
	}
	bl := benchLine{Name: f[0], Iters: n, Metrics: map[string]float64{}}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return benchLine{}, false
		}
		bl.Metrics[f[i+1]] = v
	}
	if _, ok := bl.Metrics["ns/op"]; !ok {
		return benchLine{}, false
	}
	return bl, true
}

// benchName strips the -GOMAXPROCS suffix go test appends.
func benchName(s string) string {
	if i := strings.LastIndexByte(s, '-'); i > 0 {
		if _, err := strconv.Atoi(s[i+1:]); err == nil {
			return s[:i]
		}
	}
	return s
}

// goBenchResult is a benchmark's wall-clock line plus its CPU cost per op,
// measured from the test binary's rusage.
type goBenchResult struct {
	Spec     goBench
	Line     benchLine
	Raw      string
	CPUPerOp time.Duration // 0 when not measured
}

// bytesPerOp is what b.SetBytes declared, recovered from MB/s and ns/op.
func (r goBenchResult) bytesPerOp() float64 {
	return r.Line.Metrics["MB/s"] * 1e6 * r.Line.Metrics["ns/op"] / 1e9
}

// linesPerOp is how many log lines one op handles (1 for per-line
// benchmarks).
func (r goBenchResult) linesPerOp() (float64, bool) {
	if r.Spec.NoLines {
		return 0, false
	}
	if v, ok := r.Line.Metrics["lines/op"]; ok && v > 0 {
		return v, true
	}
	if !r.Spec.PerFile {
		return 1, true
	}
	if r.Spec.LineBytes > 0 && r.bytesPerOp() > 0 {
		return r.bytesPerOp() / r.Spec.LineBytes, false
	}
	return 0, false
}

// mbPerCPUSecond is throughput per core: bytes per op over CPU time per op.
func (r goBenchResult) mbPerCPUSecond() float64 {
	if r.CPUPerOp <= 0 {
		return 0
	}
	return r.bytesPerOp() / 1e6 / r.CPUPerOp.Seconds()
}

// goBenchRunner compiles test binaries once per package and runs single
// benchmarks with GOMAXPROCS=1, so "per core" means one core.
type goBenchRunner struct {
	repo, dir string
	logger    *slog.Logger
	binaries  map[string]string
}

func (g *goBenchRunner) binary(ctx context.Context, pkg string) (string, error) {
	if b, ok := g.binaries[pkg]; ok {
		return b, nil
	}
	out := filepath.Join(g.dir, strings.NewReplacer("/", "_", ".", "_").Replace(pkg)+".test")
	cmd := exec.CommandContext(ctx, "go", "test", "-c", "-o", out, pkg)
	cmd.Dir = g.repo
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("compiling tests of %s: %w\n%s", pkg, err, b)
	}
	g.binaries[pkg] = out
	return out, nil
}

// exec runs one benchmark with a benchtime and returns its output line and
// the CPU time the test process used.
func (g *goBenchRunner) exec(ctx context.Context, bin string, spec goBench, benchtime string) (benchLine, string, time.Duration, error) {
	cmd := exec.CommandContext(ctx, bin, "-test.run", "^$", "-test.bench", "^"+spec.Name+"$", "-test.benchmem",
		"-test.cpu", "1", "-test.count", "1", "-test.benchtime", benchtime, "-test.timeout", "5m")
	// Tests find their testdata relative to the package directory.
	cmd.Dir = filepath.Join(g.repo, spec.Pkg)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return benchLine{}, "", 0, fmt.Errorf("running %s %s: %w\n%s", spec.Pkg, spec.Name, err, tailString(out.String(), 2000))
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	var cpu time.Duration
	if ru != nil {
		cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if bl, ok := parseBenchLine(sc.Text()); ok && benchName(bl.Name) == spec.Name {
			return bl, strings.TrimSpace(sc.Text()), cpu, nil
		}
	}
	return benchLine{}, "", 0, fmt.Errorf("%s %s: no result line (benchmark missing or skipped?)\n%s", spec.Pkg, spec.Name, tailString(out.String(), 2000))
}

// run measures spec: once with -benchtime=1s for the standard line, then
// twice with fixed iteration counts; the difference in process CPU time
// divided by the difference in iterations is the CPU per op without the
// benchmark's setup, and without the inflation a busy machine puts on
// ns/op.
func (g *goBenchRunner) run(ctx context.Context, spec goBench) (goBenchResult, error) {
	bin, err := g.binary(ctx, spec.Pkg)
	if err != nil {
		return goBenchResult{}, err
	}
	g.logger.Info("go benchmark", "pkg", spec.Pkg, "name", spec.Name)
	bl, raw, _, err := g.exec(ctx, bin, spec, "1s")
	if err != nil {
		return goBenchResult{}, err
	}
	res := goBenchResult{Spec: spec, Line: bl, Raw: raw}
	nsOp := bl.Metrics["ns/op"]
	if nsOp <= 0 {
		return res, nil
	}
	n2 := int64(2e9 / nsOp)
	n2 = max(n2, 4)
	n1 := max(n2/8, 1)
	_, _, cpu1, err := g.exec(ctx, bin, spec, fmt.Sprintf("%dx", n1))
	if err != nil {
		return res, err
	}
	_, _, cpu2, err := g.exec(ctx, bin, spec, fmt.Sprintf("%dx", n2))
	if err != nil {
		return res, err
	}
	if cpu2 > cpu1 {
		res.CPUPerOp = (cpu2 - cpu1) / time.Duration(n2-n1)
	}
	return res, nil
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// runGoBenchmarks runs the agents' Go benchmarks and adds their figures.
func runGoBenchmarks(ctx context.Context, r *report, repo string, logger *slog.Logger) *section {
	s := &section{Title: "Go benchmarks (agent packages)"}
	dir, err := os.MkdirTemp("", "nodekit-bench-go-")
	if err != nil {
		s.Err = err
		return s
	}
	defer os.RemoveAll(dir)
	g := &goBenchRunner{repo: repo, dir: dir, logger: logger, binaries: map[string]string{}}
	specs := []goBench{
		{Pkg: "./pkg/logship", Name: "BenchmarkReadParseCRI", PerFile: true, LineBytes: fixtureLineBytes},
		{Pkg: "./pkg/logship", Name: "BenchmarkReadParseEncodeBatch", PerFile: true, LineBytes: fixtureLineBytes},
		{Pkg: "./pkg/logship/parse", Name: "BenchmarkParseCRI"},
		{Pkg: "./pkg/logship/batch", Name: "BenchmarkBatch"},
		{Pkg: "./pkg/nodeexp", Name: "BenchmarkScrape", NoLines: true},
		{Pkg: "./pkg/nodeexp/podstats", Name: "BenchmarkPodCollector100", NoLines: true},
	}
	results := map[string]goBenchResult{}
	var raws []string
	var errs []string
	for _, spec := range specs {
		res, err := g.run(ctx, spec)
		if err != nil {
			logger.Warn("go benchmark failed", "name", spec.Name, "err", err)
			errs = append(errs, fmt.Sprintf("- `%s %s`: %s", spec.Pkg, spec.Name, firstLine(err.Error())))
			continue
		}
		results[spec.Name] = res
		raws = append(raws, res.Raw)
	}

	const readGoal = "> 1000 MB/s per core (1 GB/s)"
	if res, ok := results["BenchmarkReadParseCRI"]; ok && res.CPUPerOp > 0 {
		v := res.mbPerCPUSecond()
		r.add(figure{Agent: "logship", Name: "read + CRI parse (Go benchmark), per core", Measured: fmt.Sprintf("%.0f MB/s", v),
			Goal: readGoal, Verdict: atLeast(v, 1000), Note: fmt.Sprintf("MB per CPU-second, GOMAXPROCS=1; wall clock said %.0f MB/s", res.Line.Metrics["MB/s"])})
	} else {
		r.notMeasured("logship", "read + CRI parse (Go benchmark), per core", readGoal, nil)
	}
	if res, ok := results["BenchmarkReadParseEncodeBatch"]; ok && res.CPUPerOp > 0 {
		r.encodeRate = res.mbPerCPUSecond() * 1e6
		r.add(figure{Agent: "logship", Name: "read + parse + encode + batch (Go benchmark), per core", Measured: fmt.Sprintf("%.0f MB/s", res.mbPerCPUSecond()),
			Goal: "none (the end-to-end goal is ≥ 100 MB/CPU-s)", Verdict: info, Note: "MB per CPU-second, GOMAXPROCS=1"})
	}
	if res, ok := results["BenchmarkBatch"]; ok {
		r.add(figure{Agent: "logship", Name: "batch building, allocations per line", Measured: fmt.Sprintf("%.2f", res.Line.Metrics["allocs/op"]),
			Goal: "none (reported)", Verdict: info, Note: fmt.Sprintf("%.0f ns CPU per event", float64(res.CPUPerOp.Nanoseconds()))})
	}
	const podGoal = "< 2 ms per scrape"
	if res, ok := results["BenchmarkPodCollector100"]; ok && res.CPUPerOp > 0 {
		v := ms(res.CPUPerOp)
		r.add(figure{Agent: "nodeexp", Name: "pod collector, 100-pod fixture tree", Measured: fmt.Sprintf("%.2f ms CPU", v),
			Goal: podGoal, Verdict: below(v, 2), Note: podNote(res)})
	} else {
		r.notMeasured("nodeexp", "pod collector, 100-pod fixture tree", podGoal, nil)
	}

	s.addf("Each benchmark runs alone with `-test.cpu 1 -test.benchmem` (so per core means one core). The standard line comes from")
	s.addf("`-test.benchtime 1s`; **CPU/op** is measured apart from it: the test binary runs twice with fixed iteration counts and")
	s.addf("the difference in its user+system CPU time is divided by the difference in iterations, which leaves out the benchmark's")
	s.addf("setup and is much less inflated by other work on the machine than ns/op (contention for caches and hyperthreads")
	s.addf("still inflates it somewhat, so expect a few tens of percent of run-to-run spread on a busy machine).")
	s.addf("MB/CPU-s = bytes per op ÷ CPU per op.\n")
	s.addf("| Benchmark | ns/op (wall) | MB/s (wall) | CPU/op | MB per CPU-s | B/op | allocs/op | allocs/line |")
	s.addf("|---|---|---|---|---|---|---|---|")
	for _, spec := range specs {
		res, ok := results[spec.Name]
		if !ok {
			s.addf("| %s | failed | | | | | | |", spec.Name)
			continue
		}
		m := res.Line.Metrics
		mbs, mbcpu := "—", "—"
		if v, ok := m["MB/s"]; ok {
			mbs = fmt.Sprintf("%.0f", v)
			if res.CPUPerOp > 0 {
				mbcpu = fmt.Sprintf("%.0f", res.mbPerCPUSecond())
			}
		}
		perLine := "—"
		if lines, exact := res.linesPerOp(); lines > 0 {
			perLine = fmt.Sprintf("%.3g", m["allocs/op"]/lines)
			if !exact {
				perLine = "≈" + perLine
			}
		}
		s.addf("| %s (%s) | %s | %s | %s | %s | %.0f | %.0f | %s |", spec.Name, spec.Pkg, fmtNs(m["ns/op"]), mbs,
			fmtNs(float64(res.CPUPerOp.Nanoseconds())), mbcpu, m["B/op"], m["allocs/op"], perLine)
	}
	s.addf("\nallocs/line marked ≈ is allocs/op ÷ (bytes/op ÷ %.0f B, the fixture's line length); the others are one line per op.", float64(fixtureLineBytes))
	if len(errs) > 0 {
		s.addf("\nFailed:\n")
		s.Lines = append(s.Lines, errs...)
	}
	s.addf("\nRaw `go test` lines:\n\n```")
	s.Lines = append(s.Lines, raws...)
	s.addf("```")
	if len(results) == 0 {
		s.Err = fmt.Errorf("no Go benchmark ran")
	}
	return s
}

// fixtureLineBytes is the length of one line of pkg/logship's CRI fixture
// ("2026-11-21T10:00:00.000000000Z stdout F GET /api/v1/items/00000000 200
// 12ms user=alice ua=curl/8.5 ref=-\n").
const fixtureLineBytes = 105

func fmtNs(ns float64) string {
	switch {
	case ns <= 0:
		return "—"
	case ns < 1e3:
		return fmt.Sprintf("%.0f ns", ns)
	case ns < 1e6:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	case ns < 1e9:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	default:
		return fmt.Sprintf("%.2f s", ns/1e9)
	}
}

// podNote shows the pod collector benchmark's own CPU figure beside ours.
func podNote(res goBenchResult) string {
	n := fmt.Sprintf("wall clock %.2f ms/op", res.Line.Metrics["ns/op"]/1e6)
	if v, ok := res.Line.Metrics["cpu-ns/op"]; ok {
		n += fmt.Sprintf("; the benchmark's own cpu-ns/op: %.2f ms", v/1e6)
	}
	return n
}
