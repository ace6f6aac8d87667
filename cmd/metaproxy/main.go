// Command metaproxy gives each pod the AWS credentials of the role its own
// pod annotation names, by intercepting the pods' instance metadata requests
// (iptables DNAT to its listener) and answering the IAM paths itself. Other
// harmless metadata is proxied; nothing revealing the node's identity is.
// The command is wiring only; pkg/metaproxy holds the rest.
//
// Usage:
//
//	metaproxy [flags]              serve (see --help)
//	metaproxy uninstall [flags]    remove the interception rules and chains
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/nodekit/nodekit/pkg/agent"
	"github.com/nodekit/nodekit/pkg/awscfg"
	"github.com/nodekit/nodekit/pkg/kube"
	"github.com/nodekit/nodekit/pkg/memtrim"
	"github.com/nodekit/nodekit/pkg/metaproxy"
	"github.com/nodekit/nodekit/pkg/metaproxy/intercept"
)

func main() { os.Exit(agent.Exec("metaproxy", run, os.Args[1:], os.Stdout, os.Stderr)) }

type options struct {
	common      agent.Flags
	proxy       metaproxy.Config
	enablePprof bool
}

// newFlagSet binds o to metaproxy's flags.
func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("metaproxy", flag.ContinueOnError)
	o.common.Register(fs)
	o.proxy.RegisterFlags(fs)
	fs.BoolVar(&o.enablePprof, "enable-pprof", false, "serve /debug/pprof/ on --metrics-addr")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: metaproxy [flags]\n       metaproxy uninstall [--host-interface=...]   remove the interception rules (metaproxy uninstall --help)\n\n"+
			"Serves pods' instance metadata requests with the credentials of their own role. AWS settings come from\n"+
			"the SDK's default chain and environment (AWS_REGION, AWS_ENDPOINT_URL_STS, ...).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

func parse(args []string, out io.Writer) (*options, error) {
	o := &options{proxy: metaproxy.DefaultConfig()}
	fs := newFlagSet(o)
	if err := agent.ParseFlags(fs, args, out); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, &agent.UsageError{Err: fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	o.proxy.NodeName = o.common.NodeName
	return o, nil
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "uninstall" {
		return metaproxy.Uninstall(ctx, args[1:], stdout, os.Stderr)
	}
	o, err := parse(args, os.Stderr)
	if err != nil {
		return err
	}
	if o.common.ShowVersion {
		fmt.Fprintln(stdout, agent.VersionLine("metaproxy"))
		return nil
	}
	logger, err := o.common.NewLogger(os.Stderr)
	if err != nil {
		return &agent.UsageError{Err: err}
	}
	if err := o.common.RequireNodeName(); err != nil {
		return &agent.UsageError{Err: err}
	}
	if err := o.proxy.Discover(intercept.Netlink{}); err != nil {
		return err
	}
	if err := o.proxy.Validate(); err != nil {
		return &agent.UsageError{Err: err}
	}

	client, err := kube.NewClient(o.common.Kubeconfig, "nodekit-metaproxy/"+agent.Version())
	if err != nil {
		return fmt.Errorf("creating kubernetes client: %w", err)
	}
	awsCfg, err := awscfg.Load(ctx)
	if err != nil {
		return err
	}
	deps := metaproxy.Deps{Kube: client, STS: sts.NewFromConfig(awsCfg)}
	if o.proxy.IPTables {
		if deps.IPTables, deps.IP6Tables, err = intercept.Open(ctx, logger); err != nil {
			return err
		}
		deps.Router = intercept.Netlink{}
	}
	reg := prometheus.NewRegistry()
	proxy, err := metaproxy.New(o.proxy, deps, reg, logger)
	if err != nil {
		return err
	}
	ops := agent.NewOps(agent.OpsConfig{Addr: o.proxy.MetricsAddr, EnablePprof: o.enablePprof}, reg, logger)
	for name, cond := range proxy.Readiness() {
		ops.Check(name, cond)
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return proxy.Run(ctx) })
	g.Go(func() error { return ops.Run(ctx) })
	g.Go(func() error { return memtrim.Run(ctx, memtrim.Config{}) })
	return g.Wait()
}
