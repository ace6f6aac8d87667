// Package intercept installs and keeps the iptables rules that send pods'
// metadata traffic to metaproxy: a chain of its own in the nat table, jumped
// to from PREROUTING, that DNATs TCP for the metadata address arriving on the
// pod interfaces to metaproxy's listen address; and a chain of its own in
// the filter table, jumped to from FORWARD, that rejects whatever pod TCP to
// the metadata address the DNAT missed (a wrong interface pattern), so no
// pod ever reaches the node's own metadata service. Optionally, an ip6tables
// chain of its own in the filter table, jumped to from FORWARD, rejects pods'
// TCP to the IPv6 metadata address. Run re-applies the rules if someone
// flushes them and, on exit, leaves them in place: while metaproxy restarts
// pods get a refused connection, never the node's identity. Uninstall
// removes every rule and chain this package makes. Coverage checks that the
// interface pattern matches the pods actually on the node.
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
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

const (
	// Chain is metaproxy's own chain, in iptables' nat table (IPv4 DNAT) and
	// filter table (IPv4 backstop), and ip6tables' filter table (IPv6 reject).
	Chain   = "NODEKIT-METAPROXY"
	comment = "nodekit metaproxy: pod metadata requests to metaproxy"
	// backstopComment marks the IPv4 FORWARD reject.
	backstopComment = "nodekit metaproxy: pod metadata requests the DNAT missed never reach the node's metadata service"
	// MetadataIPv6 is the Nitro instance metadata service's IPv6 address.
	MetadataIPv6 = "fd00:ec2::254"
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
	// HostInterface is an iptables -i pattern: "cali+", "eni+", "cni0" or
	// "!eth0". Empty matches every interface: nat PREROUTING never sees the
	// node's own traffic, so that is every pod whatever its CNI.
	HostInterface string
	// CheckInterval is how often Run verifies the rules (default 5s).
	CheckInterval time.Duration
}

// ruleSet is one chain of ours, jumped to first from a built-in chain.
type ruleSet struct {
	family string // for messages: iptables or ip6tables
	ipt    IPTables
	table  string
	hook   string // built-in chain that jumps to Chain
	rule   []string
	// listed is the chain as iptables -S printed it after the last full
	// check found it right: while the chain still lists the same and the
	// hook still jumps to it, nothing changed (two iptables runs instead of
	// four; each is a process, and a check runs every 5 s).
	listed []string
}

// Interceptor owns the rules.
type Interceptor struct {
	sets      []ruleSet
	logger    *slog.Logger
	interval  time.Duration
	installed atomic.Bool
}

// Validate checks cfg as New does, for callers that report configuration
// errors before building anything.
func (cfg Config) Validate() error {
	_, _, _, err := cfg.parse()
	return err
}

func (cfg Config) parse() (meta, listen netip.AddrPort, iface []string, err error) {
	meta, err = netip.ParseAddrPort(cfg.MetadataAddr)
	if err != nil || !meta.Addr().Is4() {
		return meta, listen, nil, fmt.Errorf("metadata address %q: want IPv4 ip:port", cfg.MetadataAddr)
	}
	listen, err = netip.ParseAddrPort(cfg.ListenAddr)
	if err != nil || !listen.Addr().Is4() || listen.Addr().IsUnspecified() {
		return meta, listen, nil, fmt.Errorf("listen address %q: DNAT needs a concrete IPv4 ip:port (set --host-ip or --listen-addr)", cfg.ListenAddr)
	}
	iface, err = interfaceArgs(cfg.HostInterface)
	return meta, listen, iface, err
}

// New validates cfg and builds the rules; it changes nothing. ipt is
// iptables (IPv4); ip6 may be nil, else it is ip6tables and pods' TCP to the
// IPv6 metadata address is rejected, so an instance with the IPv6 endpoint
// enabled cannot hand pods the node's identity that way.
func New(cfg Config, ipt, ip6 IPTables, logger *slog.Logger) (*Interceptor, error) {
	meta, listen, iface, err := cfg.parse()
	if err != nil {
		return nil, err
	}
	if cfg.CheckInterval == 0 {
		cfg.CheckInterval = 5 * time.Second
	}
	port := strconv.Itoa(int(meta.Port()))
	rule := []string{"-p", "tcp", "-d", meta.Addr().String() + "/32", "--dport", port}
	rule = append(rule, iface...)
	rule = append(rule, "-m", "comment", "--comment", comment, "-j", "DNAT", "--to-destination", listen.String())
	i := &Interceptor{logger: logger, interval: cfg.CheckInterval}
	i.sets = append(i.sets, ruleSet{family: "iptables", ipt: ipt, table: "nat", hook: "PREROUTING", rule: rule})
	// Traffic the DNAT caught is for a local address now (INPUT); what still
	// heads for the metadata address through FORWARD comes from a pod the
	// pattern missed. No interface match here: a wrong pattern must mean a
	// refusal, never the node's role.
	backstop := []string{"-p", "tcp", "-d", meta.Addr().String() + "/32", "--dport", port,
		"-m", "comment", "--comment", backstopComment, "-j", "REJECT", "--reject-with", "tcp-reset"}
	i.sets = append(i.sets, ruleSet{family: "iptables", ipt: ipt, table: "filter", hook: "FORWARD", rule: backstop})
	if ip6 != nil {
		rule6 := []string{"-p", "tcp", "-d", MetadataIPv6 + "/128", "--dport", port}
		rule6 = append(rule6, "-m", "comment", "--comment", comment, "-j", "REJECT", "--reject-with", "tcp-reset")
		i.sets = append(i.sets, ruleSet{family: "ip6tables", ipt: ip6, table: "filter", hook: "FORWARD", rule: rule6})
	}
	return i, nil
}

// interfaceArgs turns "cali+" into -i cali+, "!eth0" into ! -i eth0 and
// "" into nothing (every interface).
func interfaceArgs(pattern string) ([]string, error) {
	if pattern == "" {
		return nil, nil
	}
	neg := strings.HasPrefix(pattern, "!")
	name := strings.TrimSpace(strings.TrimPrefix(pattern, "!"))
	if name == "" || len(name) > 15 || strings.ContainsAny(name, " \t/!,") {
		return nil, fmt.Errorf("host interface %q: want an iptables interface pattern such as cali+, eni+, cni0 or !eth0 (or nothing, for every interface)", pattern)
	}
	if neg {
		return []string{"!", "-i", name}, nil
	}
	return []string{"-i", name}, nil
}

var jump = []string{"-m", "comment", "--comment", comment, "-j", Chain}

// Rule is the IPv4 DNAT rule in Chain, for tests and logs.
func (i *Interceptor) Rule() []string { return append([]string(nil), i.sets[0].rule...) }

// Installed reports whether the last check found every rule in place.
func (i *Interceptor) Installed() bool { return i.installed.Load() }

// Ensure makes each chain of ours hold exactly its rule and its built-in
// chain jump to it first. It reports whether it had to change anything.
func (i *Interceptor) Ensure() (changed bool, err error) {
	defer func() { i.installed.Store(err == nil) }()
	var errs []error
	for k := range i.sets {
		set := &i.sets[k]
		c, err := set.ensure()
		changed = changed || c
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", set.family, err))
		}
	}
	return changed, errors.Join(errs...)
}

func (s *ruleSet) ensure() (changed bool, err error) {
	if s.unchanged() {
		return false, nil
	}
	s.listed = nil
	defer func() {
		if err == nil {
			// What iptables prints for our rule, for the next check.
			s.listed, _ = s.ipt.List(s.table, Chain)
		}
	}()
	exists, err := s.ipt.ChainExists(s.table, Chain)
	if err != nil {
		return false, fmt.Errorf("checking chain %s/%s: %w", s.table, Chain, err)
	}
	if !exists {
		if err := s.ipt.NewChain(s.table, Chain); err != nil {
			return false, fmt.Errorf("creating chain %s/%s: %w", s.table, Chain, err)
		}
		changed = true
	}
	rules, err := s.ipt.List(s.table, Chain)
	if err != nil {
		return changed, fmt.Errorf("listing chain %s/%s: %w", s.table, Chain, err)
	}
	ok, err := s.ipt.Exists(s.table, Chain, s.rule...)
	if err != nil {
		return changed, fmt.Errorf("checking the rule in %s/%s: %w", s.table, Chain, err)
	}
	// List's first line is the chain itself (-N); anything besides our one
	// rule is stale (an older listen address) and goes.
	if !ok || len(rules) != 2 {
		if err := s.ipt.ClearChain(s.table, Chain); err != nil {
			return changed, fmt.Errorf("flushing chain %s/%s: %w", s.table, Chain, err)
		}
		if err := s.ipt.Append(s.table, Chain, s.rule...); err != nil {
			return true, fmt.Errorf("adding the rule to %s/%s: %w", s.table, Chain, err)
		}
		changed = true
	}
	ok, err = s.ipt.Exists(s.table, s.hook, jump...)
	if err != nil {
		return changed, fmt.Errorf("checking the jump from %s/%s: %w", s.table, s.hook, err)
	}
	if !ok {
		if err := s.ipt.Insert(s.table, s.hook, 1, jump...); err != nil {
			return changed, fmt.Errorf("adding the jump from %s/%s to %s: %w", s.table, s.hook, Chain, err)
		}
		changed = true
	}
	return changed, nil
}

// unchanged reports whether the chain lists as the last full check left it
// and the hook still jumps to it.
func (s *ruleSet) unchanged() bool {
	if s.listed == nil {
		return false
	}
	rules, err := s.ipt.List(s.table, Chain)
	if err != nil || !slices.Equal(rules, s.listed) {
		return false
	}
	hook, err := s.ipt.List(s.table, s.hook)
	if err != nil {
		return false
	}
	for _, r := range hook {
		if jumpsTo(r, Chain) && strings.Contains(r, comment) {
			return true
		}
	}
	return false
}

// Run installs the rules, then re-checks them every interval until ctx
// ends. It leaves them in place on return (fail closed); errors are logged
// and retried, and surface through Installed.
func (i *Interceptor) Run(ctx context.Context) error {
	ticker := time.NewTicker(i.interval)
	defer ticker.Stop()
	first := true
	for {
		changed, err := i.Ensure()
		switch {
		case err != nil:
			i.logger.Error("metadata interception rules not in place", "err", err)
		case changed && first:
			i.logger.Info("installed metadata interception rules", "chain", Chain, "rule", strings.Join(i.Rule(), " "), "ipv6_reject", len(i.sets) > 2)
		case changed:
			i.logger.Warn("metadata interception rules were missing; re-applied", "chain", Chain)
		}
		first = false
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// Uninstall removes every jump to Chain (whatever its options) and the
// chain itself: from iptables' nat PREROUTING and filter FORWARD and, when
// ip6 is not nil, ip6tables' filter FORWARD. It succeeds when there is
// nothing to remove.
func Uninstall(ipt, ip6 IPTables) error {
	errs := []error{uninstall(ipt, "nat", "PREROUTING"), uninstall(ipt, "filter", "FORWARD")}
	if ip6 != nil {
		errs = append(errs, uninstall(ip6, "filter", "FORWARD"))
	}
	return errors.Join(errs...)
}

func uninstall(ipt IPTables, table, hook string) error {
	var errs []error
	rules, err := ipt.List(table, hook)
	if err != nil {
		return fmt.Errorf("listing %s/%s: %w", table, hook, err)
	}
	// Rule numbers count from 1 after the -P policy line; delete from the
	// end so earlier numbers stay valid.
	for n := len(rules) - 1; n >= 1; n-- {
		if !jumpsTo(rules[n], Chain) {
			continue
		}
		if err := ipt.Delete(table, hook, strconv.Itoa(n)); err != nil {
			errs = append(errs, fmt.Errorf("deleting %s/%s rule %d: %w", table, hook, n, err))
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

// HostAddr is what discovery needs from netlink; Netlink implements it.
type HostAddr interface {
	// DefaultRouteIPv4 returns the primary IPv4 address of the interface
	// holding the default route.
	DefaultRouteIPv4() (netip.Addr, error)
}

// DiscoverHostIP returns the node IP: the address of the default route's interface.
func DiscoverHostIP(h HostAddr) (netip.Addr, error) {
	return h.DefaultRouteIPv4()
}

// ListenAddrFor joins the host IP with a port for --listen-addr's default.
func ListenAddrFor(hostIP string, port int) string {
	return net.JoinHostPort(hostIP, strconv.Itoa(port))
}
