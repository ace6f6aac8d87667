package intercept

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodekit/nodekit/pkg/kube"
)

// A DNAT rule whose interface pattern misses the pods is silent: a bridge
// CNI's pods arrive on the bridge (cni0: br_netfilter reports the bridge,
// not the veth port), so --host-interface=veth+ or cali+ never matched them
// in a first trial on a real node, and they reached the node's own metadata
// service. The FORWARD backstop now refuses them; Coverage makes the
// mistake loud: for each pod on the node it asks the kernel which interface
// the node routes the pod's IP through (and that interface's bridge master,
// which is what iptables -i sees for a bridge port) and checks the pattern
// against it.

// PodLister lists the pods on this node (metaproxy's pod informer).
type PodLister interface {
	List() []*kube.Pod
}

// Router names the interface iptables sees a pod's packets arrive on: the
// interface the node routes the pod's IP through or, if that interface is
// a bridge port, its bridge. Netlink implements it.
type Router interface {
	InInterface(ip netip.Addr) (string, error)
}

// Uncovered is a pod whose metadata traffic the rule does not intercept.
type Uncovered struct {
	Pod       string // namespace/name
	IP        netip.Addr
	Interface string
}

// Coverage periodically checks that the interception rule's interface
// pattern matches every pod on the node, and reports the misses through a
// metric, the log and Covered (for readiness).
type Coverage struct {
	pattern  string
	pods     PodLister
	router   Router
	logger   *slog.Logger
	interval time.Duration
	gauge    prometheus.Gauge

	mu        sync.Mutex
	checked   bool
	uncovered []Uncovered
	reported  map[string]string // pod → interface already logged
}

// NewCoverage checks pattern (an iptables -i pattern as Config.HostInterface
// takes it; empty matches every interface) against pods every interval
// (default 5s). It registers metaproxy_pods_not_intercepted with reg.
func NewCoverage(pattern string, pods PodLister, router Router, interval time.Duration, reg prometheus.Registerer, logger *slog.Logger) (*Coverage, error) {
	if _, err := interfaceArgs(pattern); err != nil {
		return nil, err
	}
	if interval <= 0 {
		interval = 5 * time.Second
	}
	c := &Coverage{
		pattern: pattern, pods: pods, router: router, logger: logger, interval: interval,
		reported: map[string]string{},
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "metaproxy_pods_not_intercepted",
			Help: "Pods on this node whose metadata traffic arrives on an interface --host-interface does not match: they are refused, not served, until it is fixed.",
		}),
	}
	if err := reg.Register(c.gauge); err != nil {
		return nil, fmt.Errorf("registering the coverage metric: %w", err)
	}
	return c, nil
}

// Check looks at every pod once and returns those not covered.
func (c *Coverage) Check() []Uncovered {
	var out []Uncovered
	for _, p := range c.pods.List() {
		if p.Spec.HostNetwork || p.Status.Phase == kube.PodSucceeded || p.Status.Phase == kube.PodFailed {
			continue
		}
		ip, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil || !ip.Is4() {
			continue // no IP yet; IPv6 pods meet the ip6tables reject, which has no interface match
		}
		name := p.Namespace + "/" + p.Name
		iface, err := c.router.InInterface(ip)
		if err != nil {
			c.logger.Debug("no route to pod", "pod", name, "ip", ip, "err", err)
			continue
		}
		if !MatchesInterface(c.pattern, iface) {
			out = append(out, Uncovered{Pod: name, IP: ip, Interface: iface})
		}
	}
	slices.SortFunc(out, func(a, b Uncovered) int { return strings.Compare(a.Pod, b.Pod) })

	c.mu.Lock()
	defer c.mu.Unlock()
	c.checked, c.uncovered = true, out
	c.gauge.Set(float64(len(out)))
	seen := map[string]bool{}
	for _, u := range out {
		seen[u.Pod] = true
		if c.reported[u.Pod] == u.Interface {
			continue
		}
		c.reported[u.Pod] = u.Interface
		c.logger.Error("a pod's metadata traffic is not intercepted: its requests are refused, never answered with the node's role, until --host-interface matches the interface they arrive on",
			"pod", u.Pod, "ip", u.IP, "interface", u.Interface, "host_interface", c.pattern,
			"fix", fmt.Sprintf("set --host-interface (ConfigMap key metaproxy.host-interface) to a pattern matching %q, e.g. %q, or leave it empty to match every interface", u.Interface, suggest(u.Interface)))
	}
	for pod := range c.reported {
		if !seen[pod] {
			delete(c.reported, pod)
		}
	}
	return out
}

// Covered reports whether the last check found every pod covered, with the
// misses for /readyz.
func (c *Coverage) Covered() (bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.checked {
		return false, "pod coverage not checked yet"
	}
	if len(c.uncovered) == 0 {
		return true, ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d pod(s) arrive on interfaces --host-interface=%q does not match:", len(c.uncovered), c.pattern)
	for i, u := range c.uncovered {
		if i == 5 {
			b.WriteString(" ...")
			break
		}
		fmt.Fprintf(&b, " %s on %s", u.Pod, u.Interface)
	}
	return false, b.String()
}

// Run checks every interval until ctx ends.
func (c *Coverage) Run(ctx context.Context) error {
	ticker := time.NewTicker(c.interval)
	defer ticker.Stop()
	for {
		c.Check()
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// MatchesInterface reports whether iptables' -i pattern matches the
// interface name: an exact name, a prefix ending in '+', either negated by
// a leading '!'; the empty pattern (no -i) matches every interface.
func MatchesInterface(pattern, name string) bool {
	if pattern == "" {
		return true
	}
	neg := strings.HasPrefix(pattern, "!")
	p := strings.TrimSpace(strings.TrimPrefix(pattern, "!"))
	var m bool
	if prefix, ok := strings.CutSuffix(p, "+"); ok {
		m = strings.HasPrefix(name, prefix)
	} else {
		m = name == p
	}
	return m != neg
}

// suggest is the pattern for an interface: its CNI's veth prefix for the
// usual CNIs (cali1a2b → cali+), else the name itself (a bridge: cni0).
func suggest(iface string) string {
	for _, prefix := range []string{"cali", "eni", "lxc", "veth"} {
		if strings.HasPrefix(iface, prefix) {
			return prefix + "+"
		}
	}
	return iface
}
