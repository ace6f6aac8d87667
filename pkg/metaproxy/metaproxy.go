// Package metaproxy assembles metaproxy from its parts, each a package of
// its own with one job: caller names the pod behind a request's source IP,
// role decides the pod's role, creds holds its credentials (prefetch warms
// them as pods appear), imds answers the metadata protocol, upstream proxies
// what is harmless to the node's metadata service, and intercept installs
// and checks the iptables rules that send pods' metadata traffic here.
//
// Config is the command line; New wires the parts and starts nothing; Run
// serves until its context ends; Readiness names the conditions /readyz
// waits for; Uninstall is the `metaproxy uninstall` subcommand.
package metaproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/nodekit/nodekit/pkg/agent"
	"github.com/nodekit/nodekit/pkg/kube"
	"github.com/nodekit/nodekit/pkg/metaproxy/caller"
	"github.com/nodekit/nodekit/pkg/metaproxy/creds"
	"github.com/nodekit/nodekit/pkg/metaproxy/imds"
	"github.com/nodekit/nodekit/pkg/metaproxy/intercept"
	"github.com/nodekit/nodekit/pkg/metaproxy/prefetch"
	"github.com/nodekit/nodekit/pkg/metaproxy/role"
	"github.com/nodekit/nodekit/pkg/metaproxy/upstream"
)

// Deps are what metaproxy talks to outside its process.
type Deps struct {
	// Kube feeds the pod informer (and, with namespace restrictions, the
	// namespace informer): a *kube.Client.
	Kube kube.Source
	// STS assumes the pods' roles.
	STS creds.AssumeRoler
	// With Config.IPTables: IPTables and IP6Tables keep the interception
	// rules (intercept.Open opens both; IP6Tables may be nil, and pods' TCP
	// to the IPv6 metadata address is then not rejected), and Router names
	// the interface each pod's traffic arrives on, for the coverage check
	// (intercept.Netlink).
	IPTables, IP6Tables intercept.IPTables
	Router              intercept.Router
}

// Proxy is metaproxy wired together. Build it with New.
type Proxy struct {
	cfg           Config
	logger        *slog.Logger
	pods          *kube.Pods
	namespaces    *kube.Namespaces // nil without namespace restrictions
	cache         *creds.Cache
	srv           *imds.Server
	metadataCheck *agent.Probe           // the node's metadata service answering
	interceptor   *intercept.Interceptor // nil without Config.IPTables
	coverage      *intercept.Coverage    // nil without Config.IPTables
}

// New validates cfg and builds every part; it starts nothing. reg receives
// the metaproxy_* metrics.
func New(cfg Config, deps Deps, reg prometheus.Registerer, logger *slog.Logger) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("metaproxy configuration: %w", err)
	}
	if deps.Kube == nil || deps.STS == nil {
		return nil, errors.New("metaproxy needs a Kubernetes source and an STS client")
	}
	if cfg.IPTables && (deps.IPTables == nil || deps.Router == nil) {
		return nil, errors.New("metaproxy with iptables needs iptables and a router")
	}
	p := &Proxy{cfg: cfg, logger: logger}
	var err error
	if p.pods, err = kube.NewPods(deps.Kube, cfg.NodeName, logger); err != nil {
		return nil, fmt.Errorf("creating the pod informer for node %s: %w", cfg.NodeName, err)
	}
	var namespaces role.Namespaces
	if cfg.Role.NamespaceRestrictions {
		p.namespaces = kube.NewNamespaces(deps.Kube, logger)
		namespaces = p.namespaces
	}
	policy, err := role.New(cfg.Role, namespaces)
	if err != nil {
		return nil, fmt.Errorf("creating the role policy: %w", err)
	}
	if p.cache, err = creds.New(creds.Config{SessionDuration: cfg.SessionDuration}, deps.STS, reg, logger.With("component", "creds")); err != nil {
		return nil, fmt.Errorf("creating the credential cache: %w", err)
	}
	resolver := caller.New(p.pods, cfg.PodWait, logger)
	if err := p.pods.AddEventHandler(resolver.EventHandler()); err != nil {
		return nil, err
	}
	if err := p.pods.AddEventHandler(prefetch.New(policy, p.cache, logger)); err != nil {
		return nil, err
	}
	up, err := upstream.New(upstream.Config{Addr: cfg.MetadataAddr}, logger.With("component", "upstream"))
	if err != nil {
		return nil, fmt.Errorf("creating the metadata service proxy: %w", err)
	}
	p.metadataCheck = agent.NewProbe(0, func(ctx context.Context) error {
		err := up.Check(ctx)
		if err != nil && !errors.Is(err, context.Canceled) {
			logger.Debug("metadata service check failed", "err", err)
		}
		return err
	})
	serverDeps := imds.Deps{Caller: resolver, Roles: policy, Credentials: p.cache, Upstream: up}
	if p.srv, err = imds.New(cfg.IMDS, serverDeps, reg, logger.With("component", "imds")); err != nil {
		return nil, fmt.Errorf("creating the metadata server: %w", err)
	}
	if cfg.IPTables {
		icfg := intercept.Config{MetadataAddr: cfg.MetadataAddr, ListenAddr: cfg.ListenAddr, HostInterface: cfg.HostInterface}
		ilog := logger.With("component", "intercept")
		if p.interceptor, err = intercept.New(icfg, deps.IPTables, deps.IP6Tables, ilog); err != nil {
			return nil, fmt.Errorf("creating the interception rules: %w", err)
		}
		if p.coverage, err = intercept.NewCoverage(cfg.HostInterface, p.pods, deps.Router, 0, reg, ilog); err != nil {
			return nil, fmt.Errorf("creating the interception coverage check: %w", err)
		}
	}
	return p, nil
}

// Readiness returns the conditions metaproxy needs before it is ready, by
// name, for agent.Ops.Check: its informers synced, the metadata service
// answering and, with iptables, the rules in place and matching every pod
// on the node.
func (p *Proxy) Readiness() map[string]agent.Condition {
	conds := map[string]agent.Condition{
		"informers": func() (bool, string) {
			synced := p.pods.HasSynced() && (p.namespaces == nil || p.namespaces.HasSynced())
			return synced, "pod or namespace informer not synced"
		},
		"metadata-service": p.metadataCheck.State,
	}
	if p.interceptor != nil {
		conds["interception-rule"] = func() (bool, string) {
			return p.interceptor.Installed(), "iptables rule not in place"
		}
		conds["interception-coverage"] = p.coverage.Covered
	}
	return conds
}

// Run listens on the configured listen address and serves until ctx ends
// or a part fails.
func (p *Proxy) Run(ctx context.Context) error {
	// Listening here makes a busy port a start-up error, not a goroutine's.
	ln, err := net.Listen("tcp", p.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listening for metadata requests on %s: %w", p.cfg.ListenAddr, err)
	}
	return p.Serve(ctx, ln)
}

// Serve is Run on a listener the caller made; it closes ln.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	c := p.cfg
	p.logger.Info("starting metaproxy", "version", agent.Version(), "listen", ln.Addr().String(), "metrics", c.MetricsAddr,
		"metadata", c.MetadataAddr, "iptables", c.IPTables, "host_interface", c.HostInterface, "require_imdsv2", c.IMDS.RequireToken)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.pods.Run(ctx) })
	if p.namespaces != nil {
		g.Go(func() error { return p.namespaces.Run(ctx) })
	}
	g.Go(func() error { return p.cache.Run(ctx) })
	g.Go(func() error {
		// Until the informers hold the node's pods, every caller would be
		// unknown: a 404, which SDKs do not retry, so a restart failed the
		// pods asking meanwhile. Their connections wait in the listener's
		// backlog instead and are answered once the informers synced.
		if err := p.waitForInformers(ctx); err != nil {
			ln.Close()
			return nil
		}
		return p.srv.Serve(ctx, ln)
	})
	g.Go(func() error { return p.metadataCheck.Run(ctx) })
	if p.interceptor != nil {
		// On exit the rules stay: pods get refused connections while
		// metaproxy is down, never the node's own metadata service.
		g.Go(func() error { return p.interceptor.Run(ctx) })
		g.Go(func() error {
			// A check before the informer lists the node's pods would
			// find every pod covered.
			if err := p.pods.WaitForSync(ctx); err != nil {
				return nil
			}
			return p.coverage.Run(ctx)
		})
	}
	return g.Wait()
}

// waitForInformers returns once the pod informer (and the namespace
// informer, with namespace restrictions) has synced, or ctx ends.
func (p *Proxy) waitForInformers(ctx context.Context) error {
	if err := p.pods.WaitForSync(ctx); err != nil {
		return err
	}
	if p.namespaces != nil {
		return p.namespaces.WaitForSync(ctx)
	}
	return nil
}
