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

// goResults are the Go benchmarks' results, in the order they ran.
type goResults struct {
	Rows             []goRow
	Failed           []goFailure
	FixtureLineBytes float64
}

// goRow is one benchmark's result, or its failure.
type goRow struct {
	Spec   goBench
	Res    goBenchResult
	Failed bool
}

// goFailure is a benchmark that did not run.
type goFailure struct{ Pkg, Name, Err string }

func (g goRow) NsPerOp() float64     { return g.Res.Line.Metrics["ns/op"] }
func (g goRow) MBs() float64         { return g.Res.Line.Metrics["MB/s"] }
func (g goRow) BOp() float64         { return g.Res.Line.Metrics["B/op"] }
func (g goRow) AllocsPerOp() float64 { return g.Res.Line.Metrics["allocs/op"] }
func (g goRow) CPUNs() float64       { return float64(g.Res.CPUPerOp.Nanoseconds()) }
func (g goRow) MBPerCPU() float64    { return g.Res.mbPerCPUSecond() }

// HasMBs reports whether the benchmark declared its bytes per op.
func (g goRow) HasMBs() bool {
	_, ok := g.Res.Line.Metrics["MB/s"]
	return ok
}

// LinesPerOp is how many log lines one op handles (0: not about lines);
// LinesExact says it is counted, not estimated from the line length.
func (g goRow) LinesPerOp() float64 {
	n, _ := g.Res.linesPerOp()
	return n
}

func (g goRow) LinesExact() bool {
	_, exact := g.Res.linesPerOp()
	return exact
}

// result returns the named benchmark's result, if it ran.
func (g *goResults) result(name string) (goBenchResult, bool) {
	if g == nil {
		return goBenchResult{}, false
	}
	for _, r := range g.Rows {
		if r.Spec.Name == name && !r.Failed {
			return r.Res, true
		}
	}
	return goBenchResult{}, false
}

// encodeRate is the read + parse + encode + batch throughput, bytes of
// input per CPU-second (0 when not measured): the logship area weighs its
// end-to-end figure with it.
func (g *goResults) encodeRate() float64 {
	if res, ok := g.result("BenchmarkReadParseEncodeBatch"); ok && res.CPUPerOp > 0 {
		return res.mbPerCPUSecond() * 1e6
	}
	return 0
}

// runGoBenchmarks runs the agents' Go benchmarks into r.Go.
func runGoBenchmarks(ctx context.Context, r *report, repo string, logger *slog.Logger) error {
	dir, err := os.MkdirTemp("", "nodekit-bench-go-")
	if err != nil {
		return err
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
	res := &goResults{FixtureLineBytes: fixtureLineBytes}
	r.Go = res
	ran := 0
	for _, spec := range specs {
		out, err := g.run(ctx, spec)
		if err != nil {
			logger.Warn("go benchmark failed", "name", spec.Name, "err", err)
			res.Rows = append(res.Rows, goRow{Spec: spec, Failed: true})
			res.Failed = append(res.Failed, goFailure{Pkg: spec.Pkg, Name: spec.Name, Err: firstLine(err.Error())})
			continue
		}
		res.Rows = append(res.Rows, goRow{Spec: spec, Res: out})
		ran++
	}
	if ran == 0 {
		return fmt.Errorf("no Go benchmark ran")
	}
	return nil
}

// fixtureLineBytes is the length of one line of pkg/logship's CRI fixture
// ("2026-11-21T10:00:00.000000000Z stdout F GET /api/v1/items/00000000 200
// 12ms user=alice ua=curl/8.5 ref=-\n").
const fixtureLineBytes = 105
