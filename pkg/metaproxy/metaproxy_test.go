package metaproxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/nodekit/nodekit/pkg/agent"
	"github.com/nodekit/nodekit/pkg/kube"
	"github.com/nodekit/nodekit/pkg/metaproxy/intercept"
	"github.com/nodekit/nodekit/test/awsemu"
)

// source is a kube.Source serving fixed pods and namespaces. Its lists
// block until synced is closed, so a test decides when the informers sync;
// its watches never send an event.
type source struct {
	synced     chan struct{}
	pods       []kube.Pod
	namespaces []kube.Namespace
}

func (s *source) Pods(fields.Selector) cache.ListerWatcher {
	return s.listWatch(func() runtime.Object {
		return &kube.PodList{ListMeta: metav1.ListMeta{ResourceVersion: "1"}, Items: s.pods}
	})
}

func (s *source) Namespaces() cache.ListerWatcher {
	return s.listWatch(func() runtime.Object {
		return &kube.NamespaceList{ListMeta: metav1.ListMeta{ResourceVersion: "1"}, Items: s.namespaces}
	})
}

func (s *source) listWatch(list func() runtime.Object) cache.ListerWatcher {
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, _ metav1.ListOptions) (runtime.Object, error) {
			select {
			case <-s.synced:
				return list(), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
		WatchFuncWithContext: func(context.Context, metav1.ListOptions) (watch.Interface, error) {
			return watch.NewFake(), nil
		},
	}, listOnly{})
}

// listOnly makes the reflector list, then watch, rather than ask for a
// streamed watch-list, which source does not speak.
type listOnly struct{}

func (listOnly) IsWatchListSemanticsUnSupported() bool { return true }

func testPod(ns, name, ip, roleName string) kube.Pod {
	return kube.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), Annotations: map[string]string{"iam.amazonaws.com/role": roleName}},
		Spec:       kube.PodSpec{NodeName: "node-a"},
		Status:     kube.PodStatus{Phase: kube.PodRunning, PodIP: ip, PodIPs: []kube.PodIP{{IP: ip}}},
	}
}

// router is an intercept.Router from a table of pod IPs to interfaces.
type router map[string]string

func (r router) InInterface(ip netip.Addr) (string, error) {
	if iface, ok := r[ip.String()]; ok {
		return iface, nil
	}
	return "", errors.New("no route")
}

// bed is a Proxy serving on loopback: the test's own requests come from
// 127.0.0.1, the IP of its pod shop/web. STS and the node's metadata
// service are the AWS emulator.
type bed struct {
	emu      *awsemu.Emulator
	src      *source
	cfg      Config
	deps     Deps
	ipt, ip6 *intercept.Fake
	reg      *prometheus.Registry
	ops      *agent.Ops
	addr     string // the metadata listener
}

func newBed(t *testing.T) *bed {
	t.Helper()
	emu, emuURL := awsemu.StartServer(t, awsemu.Options{})
	u, err := url.Parse(emuURL)
	if err != nil {
		t.Fatal(err)
	}
	b := &bed{
		emu: emu,
		src: &source{synced: make(chan struct{}), pods: []kube.Pod{testPod("shop", "web", "127.0.0.1", "shop-web")}},
		ipt: intercept.NewFake(), ip6: intercept.NewFake(),
		reg: prometheus.NewRegistry(),
	}
	b.cfg = validConfig()
	b.cfg.Role.BaseRoleARN = "arn:aws:iam::123456789012:role/"
	b.cfg.MetadataAddr = u.Host
	b.cfg.PodWait = time.Millisecond
	b.cfg.HostInterface = "cali+"
	b.deps = Deps{
		Kube: b.src,
		STS: sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(emuURL),
			Credentials: credentials.NewStaticCredentialsProvider("AKIAEXAMPLEEXAMPLE01", "secret", "")}),
		IPTables: b.ipt, IP6Tables: b.ip6, Router: router{"127.0.0.1": "cali1a2b3c"},
	}
	return b
}

// start builds the Proxy and the ops server holding its readiness, and
// serves until the test ends.
func (b *bed) start(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	b.cfg.ListenAddr = b.addr
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := New(b.cfg, b.deps, b.reg, logger)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	b.ops = agent.NewOps(agent.OpsConfig{}, b.reg, logger)
	for name, cond := range p.Readiness() {
		b.ops.Check(name, cond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve after cancel = %v, want nil", err)
		}
	})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// readyz is the ops server's /readyz: its status and its lines.
func (b *bed) readyz() (int, []string) {
	rec := httptest.NewRecorder()
	b.ops.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	return rec.Code, strings.Split(strings.TrimSpace(rec.Body.String()), "\n")
}

// waitReadyz polls /readyz (a local handler: no network) until it answers
// code with want among its lines, and fails with the last answer if that
// does not happen within a minute: readiness follows background loops
// (informers, the metadata service probe, the rule and coverage checks)
// the test has no other hook into.
func (b *bed) waitReadyz(t *testing.T, code int, want ...string) []string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got, lines := b.readyz()
		if got == code && containsAll(lines, want) {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %q, want %d with %q", got, lines, code, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func containsAll(lines, want []string) bool {
	for _, w := range want {
		if !slices.Contains(lines, w) {
			return false
		}
	}
	return true
}

func (b *bed) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + b.addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestProxyServesOnlyAfterInformersSync: a request that arrives while the
// pod informer is still listing waits and is answered for its pod; served
// at once, it would get a 404 (unknown caller), which SDKs do not retry:
// how a restart used to fail pods.
func TestProxyServesOnlyAfterInformersSync(t *testing.T) {
	b := newBed(t)
	b.cfg.IPTables = true
	b.start(t)

	code, lines := b.readyz()
	if code != http.StatusServiceUnavailable || !containsAll(lines, []string{
		"[-] informers not ready: pod or namespace informer not synced",
		"[-] interception-coverage not ready: pod coverage not checked yet",
	}) {
		t.Fatalf("/readyz before the informers synced = %d %q", code, lines)
	}

	conn, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Served at once, the request would be answered within PodWait (1 ms)
	// with a 404; a quiet connection for much longer than that is the
	// request waiting. (Waiting has no end to observe but the sync.)
	br := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := br.Peek(1); !errors.Is(err, os.ErrDeadlineExceeded) {
		if resp, rerr := http.ReadResponse(br, nil); rerr == nil {
			t.Fatalf("answered %s before the informers synced", resp.Status)
		}
		t.Fatalf("the connection ended before the informers synced: %v", err)
	}
	conn.SetReadDeadline(time.Time{})
	close(b.src.synced)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "shop-web" {
		t.Fatalf("a request sent before the informers synced got %d %q, want 200 shop-web", resp.StatusCode, body)
	}

	// The pod gets its own role's credentials, from STS.
	code, doc := b.get(t, "/latest/meta-data/iam/security-credentials/shop-web")
	var cr struct{ AccessKeyId string }
	if err := json.Unmarshal([]byte(doc), &cr); code != http.StatusOK || err != nil {
		t.Fatalf("credentials: %d %q (%v)", code, doc, err)
	}
	if roleARN, _, ok := b.emu.RoleForAccessKey(cr.AccessKeyId); !ok || roleARN != "arn:aws:iam::123456789012:role/shop-web" {
		t.Fatalf("credentials of %q (%v), want shop-web's", roleARN, ok)
	}
}

func TestProxyReadiness(t *testing.T) {
	tests := []struct {
		name   string
		change func(*bed)
		// wantCode and want are what /readyz settles on; absent lines must
		// not be there at all.
		wantCode int
		want     []string
		absent   []string
		// wantRules: the interception rules are installed.
		wantRules    bool
		wantUncovers float64
	}{
		{
			name:     "without iptables",
			change:   func(b *bed) { b.cfg.IPTables = false; b.deps.IPTables, b.deps.IP6Tables, b.deps.Router = nil, nil, nil },
			wantCode: http.StatusOK,
			want:     []string{"[+] informers ok", "[+] metadata-service ok", "ready"},
			absent:   []string{"interception-rule", "interception-coverage"},
		},
		{
			name:      "iptables matching every pod",
			change:    func(b *bed) { b.cfg.IPTables = true },
			wantCode:  http.StatusOK,
			want:      []string{"[+] informers ok", "[+] metadata-service ok", "[+] interception-rule ok", "[+] interception-coverage ok", "ready"},
			wantRules: true,
		},
		{
			name:      "every interface",
			change:    func(b *bed) { b.cfg.IPTables, b.cfg.HostInterface = true, "" },
			wantCode:  http.StatusOK,
			want:      []string{"[+] interception-rule ok", "[+] interception-coverage ok"},
			wantRules: true,
		},
		{
			name: "a pod arriving on an interface the pattern misses",
			change: func(b *bed) {
				b.cfg.IPTables = true
				b.src.pods = append(b.src.pods, testPod("shop", "stray", "10.0.0.9", "shop-web"))
				b.deps.Router.(router)["10.0.0.9"] = "eth0"
			},
			wantCode: http.StatusServiceUnavailable,
			want: []string{"[+] informers ok", "[+] metadata-service ok", "[+] interception-rule ok",
				`[-] interception-coverage not ready: 1 pod(s) arrive on interfaces --host-interface="cali+" does not match: shop/stray on eth0`},
			wantRules:    true,
			wantUncovers: 1,
		},
		{
			name:     "the node's metadata service failing",
			change:   func(b *bed) { b.emu.SetFault("IMDSMetadata", awsemu.Fault{ServerErrorEvery: 1}) },
			wantCode: http.StatusServiceUnavailable,
			want:     []string{"[+] informers ok", "[-] metadata-service not ready: metadata service answered 500 Internal Server Error"},
		},
		{
			name: "namespace restrictions wait for the namespace informer too",
			change: func(b *bed) {
				b.cfg.Role.NamespaceRestrictions = true
				b.src.namespaces = []kube.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}}
			},
			wantCode: http.StatusOK,
			want:     []string{"[+] informers ok", "ready"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBed(t)
			b.cfg.IPTables = false
			tt.change(b)
			b.start(t)
			close(b.src.synced)
			lines := b.waitReadyz(t, tt.wantCode, tt.want...)
			for _, a := range tt.absent {
				if slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, a) }) {
					t.Errorf("/readyz lists %s: %q", a, lines)
				}
			}
			if got := b.rules(); tt.wantRules != (len(got) > 0) {
				t.Errorf("rules installed: %q, want installed=%v", got, tt.wantRules)
			}
			if tt.wantRules {
				b.checkRules(t)
				if got := gauge(t, b.reg, "metaproxy_pods_not_intercepted"); got != tt.wantUncovers {
					t.Errorf("metaproxy_pods_not_intercepted = %g, want %g", got, tt.wantUncovers)
				}
			}
		})
	}
}

// rules lists every rule in the fakes mentioning metaproxy's chain.
func (b *bed) rules() []string {
	var out []string
	for _, tc := range []struct {
		ipt          *intercept.Fake
		table, chain string
	}{
		{b.ipt, "nat", "PREROUTING"}, {b.ipt, "nat", intercept.Chain},
		{b.ipt, "filter", "FORWARD"}, {b.ipt, "filter", intercept.Chain},
		{b.ip6, "filter", "FORWARD"}, {b.ip6, "filter", intercept.Chain},
	} {
		for _, r := range tc.ipt.Rules(tc.table, tc.chain) {
			out = append(out, tc.table+"/"+tc.chain+": "+r)
		}
	}
	return out
}

// checkRules: the nat PREROUTING DNAT to the listener for the pattern's
// interfaces, the filter FORWARD backstop whatever the interface, the
// ip6tables FORWARD reject of the IPv6 metadata address.
func (b *bed) checkRules(t *testing.T) {
	t.Helper()
	meta, _ := netip.ParseAddrPort(b.cfg.MetadataAddr)
	dnat := fmt.Sprintf("-p tcp -d %s/32 --dport %d", meta.Addr(), meta.Port())
	if b.cfg.HostInterface != "" {
		dnat += " -i " + b.cfg.HostInterface
	}
	for _, tc := range []struct {
		ipt          *intercept.Fake
		table, chain string
		want         []string
	}{
		{b.ipt, "nat", intercept.Chain, []string{dnat, "-j DNAT --to-destination " + b.addr}},
		{b.ipt, "filter", intercept.Chain, []string{fmt.Sprintf("-p tcp -d %s/32 --dport %d", meta.Addr(), meta.Port()), "-j REJECT --reject-with tcp-reset"}},
		{b.ip6, "filter", intercept.Chain, []string{fmt.Sprintf("-p tcp -d %s/128 --dport %d", intercept.MetadataIPv6, meta.Port()), "-j REJECT --reject-with tcp-reset"}},
	} {
		rules := tc.ipt.Rules(tc.table, tc.chain)
		if len(rules) != 1 {
			t.Errorf("%s/%s = %q, want one rule", tc.table, tc.chain, rules)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(rules[0], w) {
				t.Errorf("%s/%s rule %q lacks %q", tc.table, tc.chain, rules[0], w)
			}
		}
	}
	for _, tc := range []struct {
		ipt         *intercept.Fake
		table, hook string
	}{{b.ipt, "nat", "PREROUTING"}, {b.ipt, "filter", "FORWARD"}, {b.ip6, "filter", "FORWARD"}} {
		if hook := tc.ipt.Rules(tc.table, tc.hook); len(hook) == 0 || !strings.Contains(hook[0], "-j "+intercept.Chain) {
			t.Errorf("%s/%s = %q, want a jump to %s first", tc.table, tc.hook, hook, intercept.Chain)
		}
	}
}

// gauge is the value of the gauge name in reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) == 1 {
			return mf.Metric[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

func TestNewRefusesMissingDeps(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config, *Deps)
		want   string
	}{
		{"no Kubernetes source", func(_ *Config, d *Deps) { d.Kube = nil }, "Kubernetes source"},
		{"no STS client", func(_ *Config, d *Deps) { d.STS = nil }, "STS client"},
		{"iptables without iptables", func(c *Config, d *Deps) { c.IPTables, d.IPTables = true, nil }, "needs iptables"},
		{"iptables without a router", func(c *Config, d *Deps) { c.IPTables, d.Router = true, nil }, "needs iptables and a router"},
		{"an invalid configuration", func(c *Config, _ *Deps) { c.PodWait = 0 }, "--pod-wait"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBed(t)
			tt.change(&b.cfg, &b.deps)
			_, err := New(b.cfg, b.deps, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
