// Command bench measures nodekit's performance figures on this machine and
// writes them to BENCHMARKS.md: `make bench` runs it as root from the
// repository root, after `make build`.
//
// Each area runs bounded in time, on loopback or inside test-bed network
// namespaces (test/testbed) only:
//
//   - Go benchmarks of the agent packages (read + CRI parse, batching, the
//     scrape and the pod collector), with CPU time per op measured apart
//     from wall time;
//   - metaproxy: credential-path throughput and latency through its
//     iptables interception against the IMDS emulator served directly,
//     the first request of a new pod with STS slowed down, and RSS with
//     110 pods and 20 roles;
//   - logship: ~120 MB of CRI lines shipped end to end to the emulator,
//     MB per CPU-second and peak RSS;
//   - nodeexp: CPU per scrape and RSS against node_exporter v1.12.1 built
//     from the Go module proxy, same collectors;
//   - suite: idle RSS of the three agents on a node with 50 pods;
//   - realnode: the nodekit pod's working set and CPU from its cgroups on
//     a real kubelet (test/realnode), idle with 30 pods and during a burst.
//
// A figure that could not be measured is listed as such; the program
// exits non-zero only when it could not write the report.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nodekit/nodekit/test/testbed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	out          string
	binDir       string
	only         []string
	mpRounds     int
	mpRound      time.Duration
	logshipMB    int
	logshipLimit time.Duration
	scrapes      int
	idle         time.Duration
	sectionLimit time.Duration
	profileDir   string
}

func (c config) bin(name string) string { return filepath.Join(c.binDir, name) }

var sections = []string{"go", "metaproxy", "logship", "nodeexp", "suite", "realnode"}

func parseFlags(args []string, out io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.out, "out", "BENCHMARKS.md", "report to write")
	fs.StringVar(&c.binDir, "bin", "bin", "directory of the agent binaries (make build)")
	only := fs.String("only", strings.Join(sections, ","), "comma-separated areas to run: "+strings.Join(sections, ", "))
	fs.IntVar(&c.mpRounds, "metaproxy-rounds", 6, "alternating load rounds per path (direct, metaproxy)")
	fs.DurationVar(&c.mpRound, "metaproxy-round", 3*time.Second, "length of one load round")
	fs.IntVar(&c.logshipMB, "logship-mb", 120, "MB of CRI lines logship ships")
	fs.DurationVar(&c.logshipLimit, "logship-limit", 6*time.Minute, "longest wait for logship to ship everything")
	fs.IntVar(&c.scrapes, "scrapes", 200, "scrapes of each exporter")
	fs.DurationVar(&c.idle, "idle", 10*time.Second, "how long the suite stays idle before its memory is read")
	fs.StringVar(&c.profileDir, "profile", "", "directory for pprof profiles of logship during its burst (figures of a profiled run are not of record)")
	fs.DurationVar(&c.sectionLimit, "section-limit", 15*time.Minute, "time limit of each area")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, s := range strings.Split(*only, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(sections, s) {
			return c, fmt.Errorf("-only: unknown area %q (want %s)", s, strings.Join(sections, ", "))
		}
		c.only = append(c.only, s)
	}
	switch {
	case c.mpRounds < 1 || c.mpRound <= 0:
		return c, errors.New("-metaproxy-rounds and -metaproxy-round must be positive")
	case c.logshipMB < 1 || c.scrapes < 1:
		return c, errors.New("-logship-mb and -scrapes must be positive")
	}
	return c, nil
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	repo, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(repo, "go.mod")); err != nil {
		return fmt.Errorf("run from the repository root (no go.mod in %s)", repo)
	}
	if cfg.binDir, err = filepath.Abs(cfg.binDir); err != nil {
		return err
	}

	r := &report{Started: time.Now(), Machine: describeMachine(ctx, repo)}
	_, r.LoadStart = loadAvg()
	areas := map[string]func(context.Context, *report, config, *slog.Logger) error{
		"go": func(ctx context.Context, r *report, _ config, l *slog.Logger) error {
			return runGoBenchmarks(ctx, r, repo, l)
		},
		"metaproxy": benchMetaproxy,
		"logship":   benchLogship,
		"nodeexp":   benchNodeexp,
		"suite":     benchSuite,
		"realnode":  benchRealnode,
	}
	for _, name := range sections {
		if !slices.Contains(cfg.only, name) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		logger.Info("bench area", "area", name)
		start := time.Now()
		// Areas needing root fail on their own with a clear message
		// (test/sandbox refuses to run without it).
		actx, cancel := context.WithTimeoutCause(ctx, cfg.sectionLimit, fmt.Errorf("%s: over the %s time limit", name, cfg.sectionLimit))
		err := areas[name](actx, r, cfg, logger)
		cancel()
		if err != nil {
			logger.Warn("bench area failed", "area", name, "err", err)
		}
		r.Areas = append(r.Areas, area{Name: name, Err: err, Took: time.Since(start)})
	}
	r.Took = time.Since(r.Started)
	_, r.LoadEnd = loadAvg()

	f, err := os.Create(cfg.out)
	if err != nil {
		return err
	}
	if err := r.write(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", cfg.out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", cfg.out, err)
	}
	logger.Info("wrote report", "path", cfg.out)
	return ctx.Err()
}

// startBed brings up a test bed and a scratch directory for one area;
// closeBed removes both, the bed first.
func startBed(ctx context.Context, logger *slog.Logger, area string) (bed *testbed.Bed, dir string, closeBed func(), err error) {
	dir, err = os.MkdirTemp("", "nodekit-bench-"+area+"-")
	if err != nil {
		return nil, "", nil, err
	}
	logger.Info(area + ": starting test bed")
	bed, err = testbed.New(ctx, testbed.Config{Logger: logger.With("component", "testbed")})
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", nil, err
	}
	return bed, dir, func() {
		if err := bed.Close(); err != nil {
			logger.Warn("closing test bed", "area", area, "err", err)
		}
		os.RemoveAll(dir)
	}, nil
}
