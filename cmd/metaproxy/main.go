// Command metaproxy gives each pod the AWS credentials of the role its own
// pod annotation names, by intercepting the pods' instance metadata requests
// (iptables DNAT to its listener) and answering the IAM paths itself. Other
// harmless metadata is proxied; nothing revealing the node's identity is.
//
// Usage:
//
//	metaproxy [flags]              serve (see --help)
//	metaproxy uninstall [flags]    remove the interception rule and chain
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/coreos/go-iptables/iptables"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/nodekit/nodekit/pkg/agent"
	"github.com/nodekit/nodekit/pkg/awscfg"
	"github.com/nodekit/nodekit/pkg/kube"
	"github.com/nodekit/nodekit/pkg/memtrim"
	"github.com/nodekit/nodekit/pkg/metaproxy/caller"
	"github.com/nodekit/nodekit/pkg/metaproxy/creds"
	"github.com/nodekit/nodekit/pkg/metaproxy/imds"
	"github.com/nodekit/nodekit/pkg/metaproxy/intercept"
	"github.com/nodekit/nodekit/pkg/metaproxy/prefetch"
	"github.com/nodekit/nodekit/pkg/metaproxy/role"
	"github.com/nodekit/nodekit/pkg/metaproxy/upstream"
)

func main() { agent.Main("metaproxy", run) }

const listenPort = 8181

type options struct {
	common          agent.Flags
	role            role.Config
	imds            imds.Config
	hostIP          string
	listenAddr      string
	metricsAddr     string
	hostInterface   string
	iptables        bool
	metadataAddr    string
	sessionDuration time.Duration
	podWait         time.Duration
	enablePprof     bool
}

func register(fs *flag.FlagSet, o *options) {
	o.common.Register(fs)
	o.role.RegisterFlags(fs)
	o.imds.RegisterFlags(fs)
	fs.StringVar(&o.hostIP, "host-ip", os.Getenv("HOST_IP"), "this node's IP, where pods' metadata requests are sent (default $HOST_IP; discovered from the default route when empty)")
	fs.StringVar(&o.listenAddr, "listen-addr", "", fmt.Sprintf("address for pods' metadata requests (default --host-ip:%d)", listenPort))
	fs.StringVar(&o.metricsAddr, "metrics-addr", "127.0.0.1:9181", "address for /metrics, /healthz and /readyz; never the metadata address")
	fs.StringVar(&o.hostInterface, "host-interface", "", "iptables -i pattern of the interfaces pods' traffic arrives on: cali+ (Calico), eni+ (AWS VPC CNI), lxc+ (Cilium), cni0 or cbr0 (bridge CNIs), !eth0; empty matches every interface. Pods it misses are refused, never served the node's role, and keep metaproxy unready")
	fs.BoolVar(&o.iptables, "iptables", false, "install and keep the nat rule sending pods' metadata traffic to --listen-addr (and an ip6tables rule rejecting pods' TCP to ["+intercept.MetadataIPv6+"]); the rules stay on exit (remove them with 'metaproxy uninstall')")
	fs.StringVar(&o.metadataAddr, "metadata-addr", "169.254.169.254:80", "the instance metadata service, ip:port")
	fs.DurationVar(&o.sessionDuration, "session-duration", time.Hour, "lifetime requested for role credentials (20m to 12h; credentials with under 15m left are never served). On EC2 metaproxy's own credentials are the instance profile's role session, and STS caps role chaining at 1h")
	fs.DurationVar(&o.podWait, "pod-wait", caller.DefaultWait, "how long a request from an IP the pod informer does not know yet waits for it (keep under the SDKs' 1s timeout)")
	fs.BoolVar(&o.enablePprof, "enable-pprof", false, "serve /debug/pprof/ on --metrics-addr")
}

func parse(args []string, out io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("metaproxy", flag.ContinueOnError)
	register(fs, o)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: metaproxy [flags]\n       metaproxy uninstall [--host-interface=...]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := agent.ParseFlags(fs, args, out); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, &agent.UsageError{Err: fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if o.podWait <= 0 || o.podWait > 5*time.Second {
		return nil, &agent.UsageError{Err: fmt.Errorf("--pod-wait %v: want more than 0 and at most 5s", o.podWait)}
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "uninstall" {
		return uninstall(args[1:], stdout)
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
	if err := o.discover(); err != nil {
		return err
	}
	if err := o.validateAddrs(); err != nil {
		return &agent.UsageError{Err: err}
	}

	a, err := newApp(ctx, o, logger)
	if err != nil {
		return err
	}
	return a.run(ctx)
}

// app is metaproxy wired together, not yet running.
type app struct {
	o           *options
	logger      *slog.Logger
	pods        *kube.Pods
	namespaces  *kube.Namespaces // nil without --namespace-restrictions
	cache       *creds.Cache
	srv         *imds.Server
	ops         *agent.Ops
	interceptor *intercept.Interceptor // nil without --iptables
	coverage    *intercept.Coverage    // nil without --iptables
	gates       readiness
}

// newApp builds every part; constructors validate and start nothing.
func newApp(ctx context.Context, o *options, logger *slog.Logger) (*app, error) {
	a := &app{o: o, logger: logger}
	client, err := kube.NewClient(o.common.Kubeconfig, "nodekit-metaproxy/"+agent.Version())
	if err != nil {
		return nil, fmt.Errorf("creating kubernetes client: %w", err)
	}
	if a.pods, err = kube.NewPods(client, o.common.NodeName, logger); err != nil {
		return nil, fmt.Errorf("creating pod informer for node %s: %w", o.common.NodeName, err)
	}
	var nsLister role.Namespaces
	if o.role.NamespaceRestrictions {
		a.namespaces = kube.NewNamespaces(client, logger)
		nsLister = a.namespaces
	}
	policy, err := role.New(o.role, nsLister)
	if err != nil {
		return nil, &agent.UsageError{Err: err}
	}
	awsCfg, err := awscfg.Load(ctx)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	if a.cache, err = creds.New(creds.Config{SessionDuration: o.sessionDuration}, sts.NewFromConfig(awsCfg), reg, logger.With("component", "creds")); err != nil {
		return nil, &agent.UsageError{Err: err}
	}
	resolver := caller.New(a.pods, o.podWait, logger)
	if err := a.pods.AddEventHandler(resolver.EventHandler()); err != nil {
		return nil, err
	}
	if err := a.pods.AddEventHandler(prefetch.New(policy, a.cache, logger)); err != nil {
		return nil, err
	}
	up, err := upstream.New(upstream.Config{Addr: o.metadataAddr}, logger.With("component", "upstream"))
	if err != nil {
		return nil, &agent.UsageError{Err: err}
	}
	deps := imds.Deps{Caller: resolver, Roles: policy, Credentials: a.cache, Upstream: up}
	if a.srv, err = imds.New(o.imds, deps, reg, logger.With("component", "imds")); err != nil {
		return nil, err
	}
	if o.iptables {
		ipt, ip6, err := openIPTables(ctx, logger)
		if err != nil {
			return nil, err
		}
		cfg := intercept.Config{MetadataAddr: o.metadataAddr, ListenAddr: o.listenAddr, HostInterface: o.hostInterface}
		if a.interceptor, err = intercept.New(cfg, ipt, ip6, logger.With("component", "intercept")); err != nil {
			return nil, &agent.UsageError{Err: err}
		}
		if a.coverage, err = intercept.NewCoverage(o.hostInterface, a.pods, intercept.Netlink{}, 0, reg, logger.With("component", "intercept")); err != nil {
			return nil, err
		}
	}
	a.ops = agent.NewOps(agent.OpsConfig{Addr: o.metricsAddr, EnablePprof: o.enablePprof}, reg, logger)
	a.gates = readiness{
		informers: a.ops.Gate("informers"),
		upstream:  a.ops.Gate("metadata-service"),
		pods:      a.pods, namespaces: a.namespaces, up: up, interceptor: a.interceptor, coverage: a.coverage,
	}
	if a.interceptor != nil {
		a.gates.rule = a.ops.Gate("interception-rule")
		a.gates.covered = a.ops.Gate("interception-coverage")
	}
	return a, nil
}

// run starts every part under one errgroup and returns when ctx ends or a
// part fails.
func (a *app) run(ctx context.Context) error {
	o := a.o
	// Listening here makes a busy port a start-up error, not a goroutine's.
	ln, err := net.Listen("tcp", o.listenAddr)
	if err != nil {
		return fmt.Errorf("listening for metadata requests on %s: %w", o.listenAddr, err)
	}
	a.logger.Info("starting metaproxy", "version", agent.Version(), "listen", o.listenAddr, "metrics", o.metricsAddr,
		"metadata", o.metadataAddr, "iptables", o.iptables, "host_interface", o.hostInterface, "require_imdsv2", o.imds.RequireToken)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.pods.Run(ctx) })
	if a.namespaces != nil {
		g.Go(func() error { return a.namespaces.Run(ctx) })
	}
	g.Go(func() error { return a.cache.Run(ctx) })
	g.Go(func() error {
		// Until the informers hold the node's pods, every caller would be
		// unknown (404, which SDKs do not retry). Connections wait in the
		// listener's backlog instead and are answered once they are.
		if err := a.waitForInformers(ctx); err != nil {
			ln.Close()
			return nil
		}
		return a.srv.Serve(ctx, ln)
	})
	g.Go(func() error { return a.ops.Run(ctx) })
	g.Go(func() error { return memtrim.Run(ctx, memtrim.Config{}) })
	if a.interceptor != nil {
		// On exit the rules stay: pods get refused connections while
		// metaproxy is down, never the node's own metadata service.
		g.Go(func() error { return a.interceptor.Run(ctx) })
		// Checked only once the informer lists the node's pods.
		g.Go(func() error {
			if err := a.pods.WaitForSync(ctx); err != nil {
				return nil
			}
			return a.coverage.Run(ctx)
		})
	}
	g.Go(func() error { return a.gates.run(ctx, a.logger) })
	return g.Wait()
}

// waitForInformers returns once the pod informer (and the namespace
// informer, with --namespace-restrictions) has synced, or ctx ends.
func (a *app) waitForInformers(ctx context.Context) error {
	if err := a.pods.WaitForSync(ctx); err != nil {
		return err
	}
	if a.namespaces != nil {
		return a.namespaces.WaitForSync(ctx)
	}
	return nil
}

// discover fills --host-ip and --listen-addr when empty.
func (o *options) discover() error {
	if o.listenAddr == "" {
		if o.hostIP == "" {
			ip, err := intercept.DiscoverHostIP(intercept.Netlink{})
			if err != nil {
				return &agent.UsageError{Err: fmt.Errorf("--host-ip: %w", err)}
			}
			o.hostIP = ip.String()
		}
		o.listenAddr = intercept.ListenAddrFor(o.hostIP, listenPort)
	}
	return nil
}

// validateAddrs keeps the ops endpoints off the address pods reach.
func (o *options) validateAddrs() error {
	lh, lp, err := net.SplitHostPort(o.listenAddr)
	if err != nil {
		return fmt.Errorf("--listen-addr %q: %w", o.listenAddr, err)
	}
	mh, mp, err := net.SplitHostPort(o.metricsAddr)
	if err != nil {
		return fmt.Errorf("--metrics-addr %q: %w", o.metricsAddr, err)
	}
	unspecified := func(h string) bool { ip := net.ParseIP(h); return h == "" || ip != nil && ip.IsUnspecified() }
	if lp == mp && (lh == mh || unspecified(lh) || unspecified(mh)) {
		return fmt.Errorf("--metrics-addr %s overlaps --listen-addr %s: metrics must not be reachable through the metadata address", o.metricsAddr, o.listenAddr)
	}
	return nil
}

// readiness keeps the /readyz gates current: informers synced, the
// interception rule in place and matching every pod, the metadata service
// answering.
type readiness struct {
	informers, upstream, rule, covered *agent.Gate
	pods                               interface{ HasSynced() bool }
	namespaces                         *kube.Namespaces
	up                                 *upstream.Upstream
	interceptor                        *intercept.Interceptor
	coverage                           *intercept.Coverage
}

func (r readiness) run(ctx context.Context, logger *slog.Logger) error {
	ticker := time.NewTicker(2 * time.Second)
	defer ticker.Stop()
	for {
		synced := r.pods.HasSynced() && (r.namespaces == nil || r.namespaces.HasSynced())
		r.informers.SetWithReason(synced, "pod or namespace informer not synced")
		if r.rule != nil {
			r.rule.SetWithReason(r.interceptor.Installed(), "iptables rule not in place")
			r.covered.SetWithReason(r.coverage.Covered())
		}
		checkCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := r.up.Check(checkCtx)
		cancel()
		if err != nil {
			r.upstream.SetWithReason(false, err.Error())
			if ctx.Err() == nil {
				logger.Debug("metadata service check failed", "err", err)
			}
		} else {
			r.upstream.Set(true)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// uninstall removes every rule and chain --iptables installs. It accepts
// --host-interface for kube2iam-style scripts but does not need it: every
// jump to metaproxy's chain goes, whatever its interface.
func uninstall(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("metaproxy uninstall", flag.ContinueOnError)
	var iface string
	fs.StringVar(&iface, "host-interface", "", "accepted for compatibility; every jump to metaproxy's chain is removed whatever its interface")
	if err := agent.ParseFlags(fs, args, os.Stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &agent.UsageError{Err: fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	ipt, ip6, err := openIPTables(context.Background(), slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		return err
	}
	if err := intercept.Uninstall(ipt, ip6); err != nil {
		return fmt.Errorf("removing the metadata interception rules: %w", err)
	}
	fmt.Fprintf(stdout, "removed chain %s and the jumps to it (iptables nat PREROUTING and filter FORWARD, ip6tables filter FORWARD)\n", intercept.Chain)
	return nil
}

// openIPTables opens iptables and, where the node has it, ip6tables; the
// IPv6 side only rejects pods' requests to the IPv6 metadata address, so a
// node without ip6tables runs without it (and says so).
func openIPTables(ctx context.Context, logger *slog.Logger) (ipt, ip6 intercept.IPTables, err error) {
	cmd4 := intercept.BackendCommand(ctx, "iptables")
	v4, err := iptables.New(iptables.Path(cmd4))
	if err != nil {
		return nil, nil, fmt.Errorf("opening iptables: %w", err)
	}
	cmd6 := intercept.BackendCommand(ctx, "ip6tables")
	logger.Debug("iptables commands", "ipv4", cmd4, "ipv6", cmd6)
	v6, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv6), iptables.Path(cmd6))
	if err != nil {
		logger.Warn("ip6tables unavailable: pods' requests to the IPv6 metadata address are not rejected", "err", err)
		return v4, nil, nil
	}
	return v4, v6, nil
}
