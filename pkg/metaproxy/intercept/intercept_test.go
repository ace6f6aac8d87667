package intercept

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
)

func discard() *slog.Logger { return slogTo(io.Discard) }

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func TestNewValidates(t *testing.T) {
	good := Config{MetadataAddr: "169.254.169.254:80", ListenAddr: "10.0.0.1:8181", HostInterface: "cali+"}
	tests := map[string]func(*Config){
		"metadata not ip:port": func(c *Config) { c.MetadataAddr = "169.254.169.254" },
		"metadata IPv6":        func(c *Config) { c.MetadataAddr = "[fd00:ec2::254]:80" },
		"listen unspecified":   func(c *Config) { c.ListenAddr = "0.0.0.0:8181" },
		"listen hostname":      func(c *Config) { c.ListenAddr = "node:8181" },
		"bare negation":        func(c *Config) { c.HostInterface = "!" },
		"interface with space": func(c *Config) { c.HostInterface = "cali+ -j ACCEPT" },
		"interface too long":   func(c *Config) { c.HostInterface = "averyveryverylongname" },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := good
			mutate(&cfg)
			if _, err := New(cfg, NewFake(), nil, discard()); err == nil {
				t.Fatalf("New accepted %+v", cfg)
			}
			if err := cfg.Validate(); err == nil {
				t.Fatalf("Validate accepted %+v", cfg)
			}
		})
	}
	if _, err := New(good, NewFake(), nil, discard()); err != nil {
		t.Fatalf("New refused a good config: %v", err)
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate refused a good config: %v", err)
	}
}

func TestRule(t *testing.T) {
	for _, tt := range []struct{ iface, want string }{
		{"cali+", "-i cali+"},
		{"!eth0", "! -i eth0"},
		{"", "-p tcp -d 169.254.169.254/32 --dport 80 -m comment"},
	} {
		i, err := New(Config{MetadataAddr: "169.254.169.254:80", ListenAddr: "10.0.0.1:8181", HostInterface: tt.iface}, NewFake(), nil, discard())
		if err != nil {
			t.Fatal(err)
		}
		rule := strings.Join(i.Rule(), " ")
		for _, part := range []string{"-p tcp -d 169.254.169.254/32 --dport 80", tt.want, "-j DNAT --to-destination 10.0.0.1:8181"} {
			if !strings.Contains(rule, part) {
				t.Errorf("rule %q lacks %q", rule, part)
			}
		}
	}
}

func TestEnsureIdempotentAndRepairs(t *testing.T) {
	ipt := NewFake()
	ipt.Append("nat", "PREROUTING", "-j", "KUBE-SERVICES")
	i, err := New(Config{MetadataAddr: "169.254.169.254:80", ListenAddr: "10.0.0.1:8181", HostInterface: "cali+"}, ipt, nil, discard())
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string) {
		t.Helper()
		pre := ipt.Rules("nat", "PREROUTING")
		if len(pre) != 2 || !jumpsTo(pre[0], Chain) || pre[1] != "-j KUBE-SERVICES" {
			t.Fatalf("%s: PREROUTING = %q, want our jump first and the other rule kept", step, pre)
		}
		if got := ipt.Rules("nat", Chain); len(got) != 1 || got[0] != strings.Join(i.Rule(), " ") {
			t.Fatalf("%s: chain = %q", step, got)
		}
		if !i.Installed() {
			t.Fatalf("%s: Installed() = false", step)
		}
	}
	if changed, err := i.Ensure(); err != nil || !changed {
		t.Fatalf("first Ensure = %v, %v", changed, err)
	}
	check("install")
	calls, reads := ipt.Calls, ipt.Reads
	if changed, err := i.Ensure(); err != nil || changed || ipt.Calls != calls {
		t.Fatalf("second Ensure = %v, %v with %d mutating calls; want no change", changed, err, ipt.Calls-calls)
	}
	// Steady state: two listings per chain of ours (nat DNAT, filter backstop).
	if n := ipt.Reads - reads; n != 4 {
		t.Errorf("a check of unchanged rules ran %d iptables reads, want 4", n)
	}

	// A rule changed in place (same count) is noticed through the listing.
	ipt.Flush("nat", Chain)
	ipt.Append("nat", Chain, "-p", "tcp", "-j", "DNAT", "--to-destination", "10.0.0.9:8181")
	if changed, err := i.Ensure(); err != nil || !changed {
		t.Fatalf("Ensure after the rule was replaced = %v, %v", changed, err)
	}
	check("rule replaced in place")

	ipt.Flush("nat", "PREROUTING")
	ipt.Append("nat", "PREROUTING", "-j", "KUBE-SERVICES")
	if changed, err := i.Ensure(); err != nil || !changed {
		t.Fatalf("Ensure after PREROUTING flush = %v, %v", changed, err)
	}
	check("PREROUTING flushed")

	ipt.Flush("nat", Chain)
	if changed, _ := i.Ensure(); !changed {
		t.Fatal("Ensure did not notice the flushed chain")
	}
	check("chain flushed")

	// A rule from an older configuration is replaced, not kept alongside.
	ipt.Append("nat", Chain, "-p", "tcp", "-j", "DNAT", "--to-destination", "10.0.0.9:8181")
	i.Ensure()
	check("stale rule")
}

func TestRunKeepsRuleOnExit(t *testing.T) {
	ipt := NewFake()
	i, err := New(Config{MetadataAddr: "169.254.169.254:80", ListenAddr: "10.0.0.1:8181", HostInterface: "cali+"}, ipt, nil, discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Run installs once, then sees the cancelled context
	if err := i.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if len(ipt.Rules("nat", Chain)) != 1 {
		t.Fatal("rule not installed, or removed on exit")
	}
}

func TestUninstall(t *testing.T) {
	ipt := NewFake()
	ipt.Append("nat", "PREROUTING", "-j", "KUBE-SERVICES")
	i, _ := New(Config{MetadataAddr: "169.254.169.254:80", ListenAddr: "10.0.0.1:8181", HostInterface: "cali+"}, ipt, nil, discard())
	if _, err := i.Ensure(); err != nil {
		t.Fatal(err)
	}
	// A jump with other options, e.g. from an older version, goes too.
	ipt.Append("nat", "PREROUTING", "-i", "eni+", "-j", Chain)
	if err := Uninstall(ipt, nil); err != nil {
		t.Fatal(err)
	}
	if pre := ipt.Rules("nat", "PREROUTING"); len(pre) != 1 || pre[0] != "-j KUBE-SERVICES" {
		t.Fatalf("PREROUTING after uninstall = %q", pre)
	}
	if ok, _ := ipt.ChainExists("nat", Chain); ok {
		t.Fatal("chain left behind")
	}
	if err := Uninstall(ipt, nil); err != nil {
		t.Fatalf("second Uninstall: %v", err)
	}
}

// A wrong pattern (cali+ on a bridge CNI) must not leave pods a way to the
// node's metadata service: the FORWARD backstop rejects what the DNAT
// missed, whatever interface it came in on.
func TestBackstop(t *testing.T) {
	ipt := NewFake()
	ipt.Append("filter", "FORWARD", "-j", "KUBE-FORWARD")
	i, err := New(Config{MetadataAddr: "169.254.169.254:80", ListenAddr: "10.0.0.1:8181", HostInterface: "cali+"}, ipt, nil, discard())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := i.Ensure(); err != nil {
		t.Fatal(err)
	}
	got := ipt.Rules("filter", Chain)
	if len(got) != 1 || !strings.Contains(got[0], "-p tcp -d 169.254.169.254/32 --dport 80") ||
		!strings.HasSuffix(got[0], "-j REJECT --reject-with tcp-reset") || strings.Contains(got[0], "-i ") {
		t.Fatalf("filter chain = %q; want a reject of every forwarded metadata request", got)
	}
	if fwd := ipt.Rules("filter", "FORWARD"); len(fwd) != 2 || !jumpsTo(fwd[0], Chain) || fwd[1] != "-j KUBE-FORWARD" {
		t.Fatalf("FORWARD = %q; want our jump first", fwd)
	}
	ipt.Flush("filter", "FORWARD")
	if changed, err := i.Ensure(); err != nil || !changed || !i.Installed() {
		t.Fatalf("Ensure after a FORWARD flush = %v, %v", changed, err)
	}
	if err := Uninstall(ipt, nil); err != nil {
		t.Fatal(err)
	}
	if ok, _ := ipt.ChainExists("filter", Chain); ok {
		t.Fatal("filter chain left behind")
	}
	for _, r := range ipt.Rules("filter", "FORWARD") {
		if jumpsTo(r, Chain) {
			t.Fatalf("FORWARD still jumps to %s: %q", Chain, r)
		}
	}
}

func TestIPv6Reject(t *testing.T) {
	ipt, ip6 := NewFake(), NewFake()
	ip6.Append("filter", "FORWARD", "-j", "CNI-FORWARD")
	i, err := New(Config{MetadataAddr: "169.254.169.254:80", ListenAddr: "10.0.0.1:8181", HostInterface: "eni+"}, ipt, ip6, discard())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := i.Ensure(); err != nil {
		t.Fatal(err)
	}
	got := ip6.Rules("filter", Chain)
	// No interface match, as the IPv4 backstop: nothing the pattern misses passes.
	if len(got) != 1 || !strings.Contains(got[0], "-d fd00:ec2::254/128 --dport 80 -m comment") || !strings.Contains(got[0], "-j REJECT --reject-with tcp-reset") {
		t.Fatalf("ip6tables chain = %q", got)
	}
	if fwd := ip6.Rules("filter", "FORWARD"); len(fwd) != 2 || !jumpsTo(fwd[0], Chain) {
		t.Fatalf("ip6tables FORWARD = %q", fwd)
	}
	ip6.Flush("filter", Chain)
	if changed, err := i.Ensure(); err != nil || !changed || len(ip6.Rules("filter", Chain)) != 1 {
		t.Fatalf("IPv6 rule not re-applied: %v, %v", changed, err)
	}
	if err := Uninstall(ipt, ip6); err != nil {
		t.Fatal(err)
	}
	if fwd := ip6.Rules("filter", "FORWARD"); len(fwd) != 1 || fwd[0] != "-j CNI-FORWARD" {
		t.Fatalf("ip6tables FORWARD after uninstall = %q", fwd)
	}
	for _, f := range []*Fake{ipt, ip6} {
		if ok, _ := f.ChainExists("nat", Chain); ok {
			t.Fatal("nat chain left")
		}
		if ok, _ := f.ChainExists("filter", Chain); ok {
			t.Fatal("filter chain left")
		}
	}
}
