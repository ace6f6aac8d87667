package intercept

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodekit/nodekit/pkg/kube"
)

func TestMatchesInterface(t *testing.T) {
	for _, tt := range []struct {
		pattern, name string
		want          bool
	}{
		{"", "anything", true},
		{"cali+", "cali1a2b3c", true},
		{"cali+", "cni0", false},
		{"cni0", "cni0", true},
		{"cni0", "cni01", false},
		{"cni+", "cni0", true},
		{"!eth0", "cni0", true},
		{"!eth0", "eth0", false},
		{"!eth+", "eth1", false},
		{"veth+", "cni0", false}, // the first trial's mistake on a bridge CNI
		{"+", "lo", true},
	} {
		if got := MatchesInterface(tt.pattern, tt.name); got != tt.want {
			t.Errorf("MatchesInterface(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

type fakePods []*kube.Pod

func (f fakePods) List() []*kube.Pod { return f }

type fakeRouter map[string]string

func (f fakeRouter) InInterface(ip netip.Addr) (string, error) {
	if iface, ok := f[ip.String()]; ok {
		return iface, nil
	}
	return "", errors.New("no route")
}

func pod(ns, name, ip string, hostNetwork bool, phase kube.PodPhase) *kube.Pod {
	return &kube.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       kube.PodSpec{HostNetwork: hostNetwork},
		Status:     kube.PodStatus{Phase: phase, PodIP: ip},
	}
}

func TestCoverage(t *testing.T) {
	pods := fakePods{
		pod("shop", "web", "10.244.0.2", false, kube.PodRunning),
		pod("shop", "cart", "10.244.0.3", false, kube.PodRunning),
		pod("kube-system", "proxy", "10.99.0.2", true, kube.PodRunning), // the node's own traffic
		pod("batch", "done", "10.244.0.4", false, kube.PodSucceeded),
		pod("batch", "new", "", false, kube.PodPending),
		pod("batch", "gone", "10.244.0.9", false, kube.PodRunning), // no route yet
	}
	router := fakeRouter{"10.244.0.2": "cni0", "10.244.0.3": "cni0", "10.244.0.4": "cni0", "10.99.0.2": "eth0"}
	for _, tt := range []struct {
		pattern   string
		uncovered []string
	}{
		{"cni0", nil},
		{"", nil},
		{"!eth0", nil},
		{"cali+", []string{"shop/cart on cni0", "shop/web on cni0"}},
		{"veth+", []string{"shop/cart on cni0", "shop/web on cni0"}},
	} {
		t.Run(tt.pattern, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			c, err := NewCoverage(tt.pattern, pods, router, 0, reg, discard())
			if err != nil {
				t.Fatal(err)
			}
			if ok, why := c.Covered(); ok || why == "" {
				t.Errorf("Covered before any check = %v %q; want false with a reason", ok, why)
			}
			var got []string
			for _, u := range c.Check() {
				got = append(got, u.Pod+" on "+u.Interface)
			}
			if strings.Join(got, ",") != strings.Join(tt.uncovered, ",") {
				t.Errorf("uncovered = %q, want %q", got, tt.uncovered)
			}
			ok, why := c.Covered()
			if ok != (len(tt.uncovered) == 0) {
				t.Errorf("Covered = %v (%s)", ok, why)
			}
			if !ok && !strings.Contains(why, "shop/web on cni0") {
				t.Errorf("readiness reason %q does not name the pod and interface", why)
			}
			if v := testutil.ToFloat64(c.gauge); v != float64(len(tt.uncovered)) {
				t.Errorf("metaproxy_pods_not_intercepted = %v, want %d", v, len(tt.uncovered))
			}
		})
	}
	if _, err := NewCoverage("cali+ -j ACCEPT", pods, router, 0, prometheus.NewRegistry(), discard()); err == nil {
		t.Error("NewCoverage accepted a malformed pattern")
	}
}

// Each miss is logged once, not on every check, and again if it changes.
func TestCoverageLogsOnce(t *testing.T) {
	var logs strings.Builder
	logger := slogTo(&logs)
	pods := fakePods{pod("shop", "web", "10.244.0.2", false, kube.PodRunning)}
	router := fakeRouter{"10.244.0.2": "cni0"}
	c, err := NewCoverage("cali+", pods, router, 0, prometheus.NewRegistry(), logger)
	if err != nil {
		t.Fatal(err)
	}
	c.Check()
	c.Check()
	if n := strings.Count(logs.String(), "not intercepted"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, logs.String())
	}
	for _, want := range []string{"pod=shop/web", "interface=cni0", "host_interface=cali+", `cni0`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	router["10.244.0.2"] = "cbr0"
	c.Check()
	if n := strings.Count(logs.String(), "not intercepted"); n != 2 {
		t.Fatalf("a changed interface was not logged again (%d lines)", n)
	}
}
