package intercept

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (network namespaces and iptables); CI runs as root")
	}
}

// inFreshNetns runs fn on a thread inside a new, empty network namespace, so
// the real iptables calls never touch the machine's own rules. The thread is
// discarded afterwards rather than returned to the scheduler.
func inFreshNetns(t *testing.T, fn func()) {
	t.Helper()
	done := make(chan struct{})
	var failed bool
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		orig, err := netns.Get()
		if err != nil {
			t.Errorf("getting the current netns: %v", err)
			failed = true
			return
		}
		defer orig.Close()
		ns, err := netns.New() // also switches this thread into it
		if err != nil {
			t.Errorf("creating a netns: %v", err)
			failed = true
			return
		}
		defer ns.Close()
		defer netns.Set(orig)
		fn()
	}()
	<-done
	if failed {
		t.FailNow()
	}
}

func TestRealIPTables(t *testing.T) {
	requireRoot(t)
	inFreshNetns(t, func() {
		// Open as metaproxy does: through the backend's own command.
		ipt, ip6, err := Open(t.Context(), discard())
		if err != nil {
			t.Errorf("Open: %v", err)
			return
		}
		if ip6 == nil {
			t.Error("Open found no ip6tables on a machine that has it")
			return
		}
		i, err := New(Config{MetadataAddr: "169.254.169.254:80", ListenAddr: "10.200.0.1:8181", HostInterface: "!eth0"}, ipt, ip6, discard())
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := i.Ensure(); err != nil {
			t.Errorf("Ensure: %v", err)
			return
		}
		if changed, err := i.Ensure(); err != nil || changed {
			t.Errorf("second Ensure = %v, %v; want no change", changed, err)
		}
		rules, _ := ipt.List("nat", Chain)
		if len(rules) != 2 || !strings.Contains(rules[1], "DNAT") || !strings.Contains(rules[1], "! -i eth0") || !strings.Contains(rules[1], "10.200.0.1:8181") {
			t.Errorf("chain rules = %q", rules)
		}
		if err := ipt.ClearChain("nat", Chain); err != nil {
			t.Error(err)
		}
		if changed, err := i.Ensure(); err != nil || !changed {
			t.Errorf("Ensure after flush = %v, %v", changed, err)
		}
		rules6, _ := ip6.List("filter", Chain)
		if len(rules6) != 2 || !strings.Contains(rules6[1], "fd00:ec2::254") || !strings.Contains(rules6[1], "REJECT") {
			t.Errorf("ip6tables chain rules = %q", rules6)
		}
		if err := Uninstall(ipt, ip6); err != nil {
			t.Errorf("Uninstall: %v", err)
		}
		if ok, _ := ip6.ChainExists("filter", Chain); ok {
			t.Error("ip6tables chain left behind")
		}
		pre, _ := ipt.List("nat", "PREROUTING")
		for _, r := range pre {
			if strings.Contains(r, Chain) {
				t.Errorf("PREROUTING still has %q", r)
			}
		}
		if ok, _ := ipt.ChainExists("nat", Chain); ok {
			t.Error("chain left behind")
		}
	})
}

func TestNetlinkDiscovery(t *testing.T) {
	requireRoot(t)
	inFreshNetns(t, func() {
		// An isolated namespace: a "node" link with an address and a default
		// route through it, and a Calico-style veth name (a veth pair, both
		// ends here, since not every kernel has the dummy driver).
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "cali0123456789a"}
		if err := netlink.LinkAdd(veth); err != nil {
			t.Errorf("adding a veth pair: %v", err)
			return
		}
		eth0, err := netlink.LinkByName("eth0")
		if err != nil {
			t.Error(err)
			return
		}
		addr, _ := netlink.ParseAddr("10.250.0.7/24")
		if err := netlink.AddrAdd(eth0, addr); err != nil {
			t.Error(err)
			return
		}
		if err := netlink.LinkSetUp(eth0); err != nil {
			t.Error(err)
			return
		}
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: net.ParseIP("10.250.0.1")}); err != nil {
			t.Errorf("default route: %v", err)
			return
		}
		ip, err := DiscoverHostIP(Netlink{})
		if err != nil || ip.String() != "10.250.0.7" {
			t.Errorf("DiscoverHostIP = %v, %v; want 10.250.0.7", ip, err)
		}
	})
}

// InInterface answers what iptables -i sees: the routed interface, or its
// bridge when it is a bridge port.
func TestNetlinkInInterface(t *testing.T) {
	requireRoot(t)
	inFreshNetns(t, func() {
		bridge := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "cni0"}}
		port := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "veth1234"}, PeerName: "peer1234"}
		cali := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "cali0123456789a"}, PeerName: "peer5678"}
		for _, l := range []netlink.Link{bridge, port, cali} {
			if err := netlink.LinkAdd(l); err != nil {
				t.Errorf("adding %s: %v", l.Attrs().Name, err)
				return
			}
		}
		if err := netlink.LinkSetMaster(port, bridge); err != nil {
			t.Errorf("enslaving the port: %v", err)
			return
		}
		for _, name := range []string{"cni0", "veth1234", "peer1234", "cali0123456789a", "peer5678"} {
			l, err := netlink.LinkByName(name)
			if err == nil {
				err = netlink.LinkSetUp(l)
			}
			if err != nil {
				t.Errorf("bringing %s up: %v", name, err)
				return
			}
		}
		for _, r := range []struct{ dst, dev string }{
			{"10.244.0.0/24", "cni0"},
			{"10.245.0.7/32", "veth1234"},
			{"10.246.0.9/32", "cali0123456789a"},
		} {
			l, _ := netlink.LinkByName(r.dev)
			_, dst, _ := net.ParseCIDR(r.dst)
			if err := netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst, Scope: netlink.SCOPE_LINK}); err != nil {
				t.Errorf("route %s dev %s: %v", r.dst, r.dev, err)
				return
			}
		}
		for ip, want := range map[string]string{
			"10.244.0.5": "cni0", // the bridge CNI: routed through the bridge itself
			"10.245.0.7": "cni0", // routed through a port: iptables sees its bridge
			"10.246.0.9": "cali0123456789a",
		} {
			got, err := Netlink{}.InInterface(netip.MustParseAddr(ip))
			if err != nil || got != want {
				t.Errorf("InInterface(%s) = %q, %v; want %q", ip, got, err, want)
			}
		}
		if _, err := (Netlink{}).InInterface(netip.MustParseAddr("192.0.2.1")); err == nil {
			t.Error("InInterface found a route where there is none")
		}
	})
}
