// Package intercept installs and keeps the iptables rule that sends pods'
// metadata traffic to metaproxy: a chain of its own in the nat table, jumped
// to from PREROUTING, that DNATs TCP for the metadata address arriving on the
// pod interfaces to metaproxy's listen address. Run re-applies the rule if
// someone flushes it and, on exit, leaves it in place: while metaproxy
// restarts pods get a refused connection, never the node's identity.
// Uninstall removes every rule and chain this package makes.
//
// iptables is reached through the IPTables interface (satisfied by
// *iptables.IPTables from go-iptables); fake.go holds an in-memory double.
package intercept

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

const (
	table = "nat"
	// Chain is metaproxy's own nat chain.
	Chain      = "NODEKIT-METAPROXY"
	prerouting = "PREROUTING"
	comment    = "nodekit metaproxy: pod metadata requests to metaproxy"
)

// IPTables is the part of go-iptables this package uses.
type IPTables interface {
	ChainExists(table, chain string) (bool, error)
	NewChain(table, chain string) error
	ClearChain(table, chain string) error
	DeleteChain(table, chain string) error
	List(table, chain string) ([]string, error)
	Exists(table, chain string, rulespec ...string) (bool, error)
	Insert(table, chain string, pos int, rulespec ...string) error
	Append(table, chain string, rulespec ...string) error
	Delete(table, chain string, rulespec ...string) error
}

// Config says what to intercept and where to send it.
type Config struct {
	// MetadataAddr is the metadata service, ip:port (169.254.169.254:80).
	MetadataAddr string
	// ListenAddr is metaproxy's metadata listener, ip:port.
	ListenAddr string
	// HostInterface is an iptables -i pattern: "cali+", "eni+" or "!eth0".
	HostInterface string
	// CheckInterval is how often Run verifies the rule (default 5s).
	CheckInterval time.Duration
}

// Interceptor owns the rule.
type Interceptor struct {
	ipt       IPTables
	logger    *slog.Logger
	interval  time.Duration
	rule      []string
	installed atomic.Bool
}

// New validates cfg and builds the rule; it changes nothing.
func New(cfg Config, ipt IPTables, logger *slog.Logger) (*Interceptor, error) {
	meta, err := netip.ParseAddrPort(cfg.MetadataAddr)
	if err != nil || !meta.Addr().Is4() {
		return nil, fmt.Errorf("metadata address %q: want IPv4 ip:port", cfg.MetadataAddr)
	}
	listen, err := netip.ParseAddrPort(cfg.ListenAddr)
	if err != nil || !listen.Addr().Is4() || listen.Addr().IsUnspecified() {
		return nil, fmt.Errorf("listen address %q: DNAT needs a concrete IPv4 ip:port (set --host-ip or --listen-addr)", cfg.ListenAddr)
	}
	iface, err := interfaceArgs(cfg.HostInterface)
	if err != nil {
		return nil, err
	}
	if cfg.CheckInterval == 0 {
		cfg.CheckInterval = 5 * time.Second
	}
	rule := []string{"-p", "tcp", "-d", meta.Addr().String() + "/32", "--dport", strconv.Itoa(int(meta.Port()))}
	rule = append(rule, iface...)
	rule = append(rule, "-m", "comment", "--comment", comment, "-j", "DNAT", "--to-destination", listen.String())
	return &Interceptor{ipt: ipt, logger: logger, interval: cfg.CheckInterval, rule: rule}, nil
}

// interfaceArgs turns "cali+" into -i cali+ and "!eth0" into ! -i eth0.
func interfaceArgs(pattern string) ([]string, error) {
	neg := strings.HasPrefix(pattern, "!")
	name := strings.TrimSpace(strings.TrimPrefix(pattern, "!"))
	if name == "" || len(name) > 15 || strings.ContainsAny(name, " \t/!,") {
		return nil, fmt.Errorf("host interface %q: want an iptables interface pattern such as cali+, eni+ or !eth0", pattern)
	}
	if neg {
		return []string{"!", "-i", name}, nil
	}
	return []string{"-i", name}, nil
}

var jump = []string{"-m", "comment", "--comment", comment, "-j", Chain}

// Rule is the DNAT rule in Chain, for tests and logs.
func (i *Interceptor) Rule() []string { return append([]string(nil), i.rule...) }

// Installed reports whether the last check found the rule in place.
func (i *Interceptor) Installed() bool { return i.installed.Load() }

// Ensure makes the chain hold exactly the DNAT rule and PREROUTING jump to it
// first. It reports whether it had to change anything.
func (i *Interceptor) Ensure() (changed bool, err error) {
	defer func() { i.installed.Store(err == nil) }()
	exists, err := i.ipt.ChainExists(table, Chain)
	if err != nil {
		return false, fmt.Errorf("checking chain %s/%s: %w", table, Chain, err)
	}
	if !exists {
		if err := i.ipt.NewChain(table, Chain); err != nil {
			return false, fmt.Errorf("creating chain %s/%s: %w", table, Chain, err)
		}
		changed = true
	}
	rules, err := i.ipt.List(table, Chain)
	if err != nil {
		return changed, fmt.Errorf("listing chain %s/%s: %w", table, Chain, err)
	}
	ok, err := i.ipt.Exists(table, Chain, i.rule...)
	if err != nil {
		return changed, fmt.Errorf("checking the DNAT rule in %s/%s: %w", table, Chain, err)
	}
	// List's first line is the chain itself (-N); anything besides our one
	// rule is stale (an older listen address) and goes.
	if !ok || len(rules) != 2 {
		if err := i.ipt.ClearChain(table, Chain); err != nil {
			return changed, fmt.Errorf("flushing chain %s/%s: %w", table, Chain, err)
		}
		if err := i.ipt.Append(table, Chain, i.rule...); err != nil {
			return true, fmt.Errorf("adding the DNAT rule to %s/%s: %w", table, Chain, err)
		}
		changed = true
	}
	ok, err = i.ipt.Exists(table, prerouting, jump...)
	if err != nil {
		return changed, fmt.Errorf("checking the jump from %s/%s: %w", table, prerouting, err)
	}
	if !ok {
		if err := i.ipt.Insert(table, prerouting, 1, jump...); err != nil {
			return changed, fmt.Errorf("adding the jump from %s/%s to %s: %w", table, prerouting, Chain, err)
		}
		changed = true
	}
	return changed, nil
}

// Run installs the rule, then re-checks it every interval until ctx ends. It
// leaves the rule in place on return (fail closed); errors are logged and
// retried, and surface through Installed.
func (i *Interceptor) Run(ctx context.Context) error {
	ticker := time.NewTicker(i.interval)
	defer ticker.Stop()
	first := true
	for {
		changed, err := i.Ensure()
		switch {
		case err != nil:
			i.logger.Error("metadata interception rule not in place", "err", err)
		case changed && first:
			i.logger.Info("installed metadata interception rule", "chain", Chain, "rule", strings.Join(i.rule, " "))
		case changed:
			i.logger.Warn("metadata interception rule was missing; re-applied", "chain", Chain)
		}
		first = false
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// Uninstall removes every jump to Chain from PREROUTING (whatever its
// options), then the chain. It succeeds when there is nothing to remove.
func Uninstall(ipt IPTables) error {
	var errs []error
	rules, err := ipt.List(table, prerouting)
	if err != nil {
		return fmt.Errorf("listing %s/%s: %w", table, prerouting, err)
	}
	// Rule numbers count from 1 after the -P policy line; delete from the
	// end so earlier numbers stay valid.
	for n := len(rules) - 1; n >= 1; n-- {
		if !jumpsTo(rules[n], Chain) {
			continue
		}
		if err := ipt.Delete(table, prerouting, strconv.Itoa(n)); err != nil {
			errs = append(errs, fmt.Errorf("deleting %s/%s rule %d: %w", table, prerouting, n, err))
		}
	}
	exists, err := ipt.ChainExists(table, Chain)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("checking chain %s/%s: %w", table, Chain, err))...)
	}
	if exists {
		if err := ipt.ClearChain(table, Chain); err != nil {
			errs = append(errs, fmt.Errorf("flushing chain %s/%s: %w", table, Chain, err))
		} else if err := ipt.DeleteChain(table, Chain); err != nil {
			errs = append(errs, fmt.Errorf("deleting chain %s/%s: %w", table, Chain, err))
		}
	}
	return errors.Join(errs...)
}

func jumpsTo(rule, chain string) bool {
	f := strings.Fields(rule)
	for k := 0; k+1 < len(f); k++ {
		if (f[k] == "-j" || f[k] == "-g") && f[k+1] == chain {
			return true
		}
	}
	return false
}

// HostAddr is what discovery needs from netlink; netlinkHost implements it.
type HostAddr interface {
	// DefaultRouteIPv4 returns the primary IPv4 address of the interface
	// holding the default route.
	DefaultRouteIPv4() (netip.Addr, error)
	// LinkNames lists the network interfaces.
	LinkNames() ([]string, error)
}

// DiscoverHostIP returns the node IP: the address of the default route's interface.
func DiscoverHostIP(h HostAddr) (netip.Addr, error) {
	return h.DefaultRouteIPv4()
}

// DiscoverInterface guesses the pod interface pattern from the CNI's veth
// names: Calico's cali*, the AWS VPC CNI's eni*.
func DiscoverInterface(h HostAddr) (string, error) {
	names, err := h.LinkNames()
	if err != nil {
		return "", err
	}
	for _, prefix := range []string{"cali", "eni"} {
		for _, n := range names {
			if strings.HasPrefix(n, prefix) {
				return prefix + "+", nil
			}
		}
	}
	return "", errors.New("no cali* or eni* interfaces found; set --host-interface")
}

// ListenAddrFor joins the host IP with a port for --listen-addr's default.
func ListenAddrFor(hostIP string, port int) string {
	return net.JoinHostPort(hostIP, strconv.Itoa(port))
}
