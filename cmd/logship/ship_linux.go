package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/nodekit/nodekit/pkg/agent"
	"github.com/nodekit/nodekit/pkg/awscfg"
	"github.com/nodekit/nodekit/pkg/kube"
	"github.com/nodekit/nodekit/pkg/logship"
	"github.com/nodekit/nodekit/pkg/logship/enrich"
	"github.com/nodekit/nodekit/pkg/logship/ship"
	"github.com/nodekit/nodekit/pkg/memtrim"
)

type options struct {
	common      agent.Flags
	ship        logship.Config
	metricsAddr string
	enablePprof bool
	memoryLimit int64
}

// newFlagSet binds o to logship's flags.
func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("logship", flag.ContinueOnError)
	o.common.Register(fs)
	o.ship.RegisterFlags(fs)
	fs.StringVar(&o.metricsAddr, "metrics-addr", "127.0.0.1:9182", "address for /metrics, /healthz and /readyz")
	fs.BoolVar(&o.enablePprof, "enable-pprof", false, "serve /debug/pprof/ on --metrics-addr")
	fs.Int64Var(&o.memoryLimit, "memory-limit-bytes", 30<<20, "soft memory limit for the Go runtime (GC works harder near it; 0 = none); $GOMEMLIMIT wins when set")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: logship [flags]\n       logship query [flags] [POD]   read shipped logs (logship query --help)\n\n"+
			"Ships container logs from --containers-dir to CloudWatch Logs. AWS settings come from the SDK's\n"+
			"default chain and environment (AWS_REGION, AWS_ENDPOINT_URL_CLOUDWATCH_LOGS, ...).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

func parse(args []string, out io.Writer) (*options, error) {
	o := &options{ship: logship.DefaultConfig()}
	fs := newFlagSet(o)
	if err := agent.ParseFlags(fs, args, out); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, &agent.UsageError{Err: fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	o.ship.NodeName = o.common.NodeName
	if o.common.ShowVersion {
		return o, nil
	}
	if err := o.ship.Validate(); err != nil {
		return nil, &agent.UsageError{Err: err}
	}
	return o, nil
}

// runShipper runs the shipper until ctx ends.
func runShipper(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parse(args, os.Stderr)
	if err != nil {
		return err
	}
	if o.common.ShowVersion {
		fmt.Fprintln(stdout, agent.VersionLine("logship"))
		return nil
	}
	logger, err := o.common.NewLogger(os.Stderr)
	if err != nil {
		return &agent.UsageError{Err: err}
	}
	// The buffer bound keeps live memory small; the soft limit keeps the
	// garbage around it small too (a DaemonSet on every node).
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && o.memoryLimit > 0 {
		debug.SetMemoryLimit(o.memoryLimit)
	}
	if err := o.common.RequireNodeName(); err != nil {
		return &agent.UsageError{Err: err}
	}
	client, err := kube.NewClient(o.common.Kubeconfig, "nodekit-logship/"+agent.Version())
	if err != nil {
		return fmt.Errorf("creating kubernetes client: %w", err)
	}
	pods, err := kube.NewPods(client, o.common.NodeName, logger)
	if err != nil {
		return fmt.Errorf("creating pod informer for node %s: %w", o.common.NodeName, err)
	}
	// Deleted pods' metadata stays while their files are read, and a
	// while longer for files discovered late: a file is found within
	// --rescan-interval of appearing (10 s), so two minutes are ample,
	// and a node churning pods does not hold every deleted pod's labels
	// for long.
	meta := enrich.New(2 * time.Minute)
	if err := pods.AddEventHandler(meta); err != nil {
		return err
	}
	go meta.Run(ctx)
	awsCfg, err := awscfg.Load(ctx)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	shipper, err := logship.New(o.ship, ship.NewClient(awsCfg), meta, reg, logger)
	if err != nil {
		// parse validated the configuration: what is left is not the
		// command line's fault.
		return err
	}
	ops := agent.NewOps(agent.OpsConfig{Addr: o.metricsAddr, EnablePprof: o.enablePprof}, reg, logger)
	// Ready once a first batch went through, and not while a failure
	// only an operator can fix holds up a stream.
	ops.Check("cloudwatch", shipper.Readiness)
	logger.Info("starting logship", "version", agent.Version(), "containers_dir", o.ship.ContainersDir,
		"state_dir", o.ship.StateDir, "log_group", o.ship.LogGroup, "metrics", o.metricsAddr)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return pods.Run(ctx) })
	g.Go(func() error { return ops.Run(ctx) })
	g.Go(func() error { return memtrim.Run(ctx, memtrim.Config{}) })
	g.Go(func() error {
		// Shipping never waits on the API server, but a short wait for the
		// first pod list saves shipping the first lines without labels.
		wctx, cancel := context.WithTimeout(ctx, o.ship.MetadataWait)
		if err := pods.WaitForSync(wctx); err != nil && ctx.Err() == nil {
			logger.Warn("pod informer not synced yet; starting anyway", "err", err)
		}
		cancel()
		return shipper.Run(ctx)
	})
	return g.Wait()
}
