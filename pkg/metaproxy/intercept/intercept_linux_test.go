package intercept

import (
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/coreos/go-iptables/iptables"
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
		ipt, err := iptables.New()
		if err != nil {
			t.Errorf("iptables: %v", err)
			return
		}
		ip6, err := iptables.NewWithProtocol(iptables.ProtocolIPv6)
		if err != nil {
			t.Errorf("ip6tables: %v", err)
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
