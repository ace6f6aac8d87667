package imds

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/pkg/kube"
	"github.com/nodekit/nodekit/pkg/metaproxy/creds"
	"github.com/nodekit/nodekit/pkg/metaproxy/role"
)

type podsByIP map[string]*kube.Pod

func (m podsByIP) Resolve(_ context.Context, ip string) (*kube.Pod, error) {
	if p, ok := m[ip]; ok {
		return p, nil
	}
	return nil, errors.New("unknown")
}

type fakeCreds struct {
	mu   sync.Mutex
	keys []creds.Key
	err  error
}

func (f *fakeCreds) Get(_ context.Context, k creds.Key) (creds.Credentials, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = append(f.keys, k)
	if f.err != nil {
		return creds.Credentials{}, f.err
	}
	return creds.Credentials{
		AccessKeyID: "AKIA-" + k.RoleARN, SecretAccessKey: "secret", SessionToken: "token",
		Expiration: time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC), LastUpdated: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}, nil
}

// fakeUpstream records what reached the real metadata service.
type fakeUpstream struct {
	mu    sync.Mutex
	paths []string
}

func (f *fakeUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.paths = append(f.paths, r.URL.Path)
	f.mu.Unlock()
	io.WriteString(w, "upstream:"+r.URL.Path)
}

const base = "arn:aws:iam::123456789012:role/"

func mkpod(ns, name, uid, roleName string) *kube.Pod {
	p := &kube.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)}}
	if roleName != "" {
		p.Annotations = map[string]string{"iam.amazonaws.com/role": roleName}
	}
	return p
}

type fixture struct {
	srv      *Server
	creds    *fakeCreds
	upstream *fakeUpstream
	reg      *prometheus.Registry
}

func newFixture(t testing.TB, cfg Config, defaultRole string) *fixture {
	t.Helper()
	policy, err := role.New(role.Config{BaseRoleARN: base, DefaultRole: defaultRole, RoleKey: "iam.amazonaws.com/role"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{creds: &fakeCreds{}, upstream: &fakeUpstream{}, reg: prometheus.NewRegistry()}
	pods := podsByIP{
		"10.0.0.1": mkpod("ns", "app", "uid-app", "app"),
		"10.0.0.2": mkpod("ns", "other", "uid-other", "other"),
		"10.0.0.3": mkpod("ns", "plain", "uid-plain", ""),
		"10.0.0.4": mkpod("ns", "bad", "uid-bad", "arn:aws:s3:::bucket"),
	}
	f.srv, err = New(cfg, Deps{Caller: pods, Roles: policy, Credentials: f.creds, Upstream: f.upstream}, f.reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) do(method, target, ip string, header map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	r.RemoteAddr = ip + ":40000"
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, r)
	return w
}

func TestCredentialPaths(t *testing.T) {
	f := newFixture(t, Config{}, "")
	tests := []struct {
		name, method, path, ip string
		code                   int
		body                   string // substring
	}{
		{name: "list", path: "/latest/meta-data/iam/security-credentials/", ip: "10.0.0.1", code: 200, body: "app"},
		{name: "list without slash", path: "/latest/meta-data/iam/security-credentials", ip: "10.0.0.1", code: 200, body: "app"},
		{name: "own role", path: "/latest/meta-data/iam/security-credentials/app", ip: "10.0.0.1", code: 200, body: `"AccessKeyId": "AKIA-` + base + `app"`},
		{name: "extended", path: "/latest/meta-data/iam/security-credentials-extended/app", ip: "10.0.0.1", code: 200, body: `"AccountId": "123456789012"`},
		{name: "another role", path: "/latest/meta-data/iam/security-credentials/other", ip: "10.0.0.1", code: 403},
		{name: "node role spelling", path: "/latest/meta-data/iam/security-credentials/%2e%2e/security-credentials/NodeRole", ip: "10.0.0.1", code: 403},
		{name: "dated version", path: "/2016-09-02/meta-data/iam/security-credentials/NodeRole", ip: "10.0.0.1", code: 403},
		{name: "other pod's own role", path: "/latest/meta-data/iam/security-credentials/other", ip: "10.0.0.2", code: 200, body: `"Type": "AWS-HMAC"`},
		{name: "info", path: "/latest/meta-data/iam/info", ip: "10.0.0.1", code: 200, body: `"InstanceProfileArn": "arn:aws:iam::123456789012:instance-profile/app"`},
		{name: "iam listing", path: "/latest/meta-data/iam/", ip: "10.0.0.1", code: 200, body: "security-credentials/"},
		{name: "no role, no default", path: "/latest/meta-data/iam/security-credentials/", ip: "10.0.0.3", code: 404},
		{name: "invalid role annotation", path: "/latest/meta-data/iam/security-credentials/", ip: "10.0.0.4", code: 403},
		{name: "unknown pod", path: "/latest/meta-data/iam/security-credentials/", ip: "10.9.9.9", code: 404},
		{name: "unknown pod proxied path", path: "/latest/meta-data/placement/region", ip: "10.9.9.9", code: 404},
		{name: "user-data", path: "/latest/user-data", ip: "10.0.0.1", code: 403},
		{name: "user-data spelling", path: "/latest/meta-data/..//%75ser-data/", ip: "10.0.0.1", code: 403},
		{name: "identity credentials", path: "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance", ip: "10.0.0.1", code: 403},
		{name: "near spelling of iam", path: "/latest/meta-data/iam%20/security-credentials/", ip: "10.0.0.1", code: 403},
		{name: "unicode near spelling", path: "/latest/meta-data/identity-credential%C5%BF/ec2/security-credentials/ec2-instance", ip: "10.0.0.1", code: 403},
		{name: "double encoding", path: "/latest/meta-data/%252e%252e/user-data", ip: "10.0.0.1", code: 400},
		{name: "region proxied", path: "/latest/meta-data/placement/region", ip: "10.0.0.1", code: 200, body: "upstream:/latest/meta-data/placement/region"},
		{name: "identity document proxied clean", path: "/latest//dynamic/./instance-identity/document?x=1", ip: "10.0.0.1", code: 200, body: "upstream:/latest/dynamic/instance-identity/document"},
		{name: "post refused", method: "POST", path: "/latest/meta-data/iam/info", ip: "10.0.0.1", code: 405},
		{name: "get token refused", path: "/latest/api/token", ip: "10.0.0.1", code: 405},
		{name: "nothing there", path: "/foo", ip: "10.0.0.1", code: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			w := f.do(method, tt.path, tt.ip, nil)
			if w.Code != tt.code || !strings.Contains(w.Body.String(), tt.body) {
				t.Fatalf("%s %s from %s = %d %q; want %d containing %q", method, tt.path, tt.ip, w.Code, w.Body.String(), tt.code, tt.body)
			}
		})
	}
	for _, p := range f.upstream.paths {
		if strings.Contains(strings.ToLower(p), "iam") || strings.Contains(p, "user-data") {
			t.Errorf("sensitive path %q reached the upstream", p)
		}
	}
}

func TestCredentialDocument(t *testing.T) {
	f := newFixture(t, Config{}, "def")
	w := f.do("GET", "/latest/meta-data/iam/security-credentials/def", "10.0.0.3", nil)
	var doc map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatalf("%d %q: %v", w.Code, w.Body.String(), err)
	}
	want := map[string]string{
		"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": "AKIA-" + base + "def", "SecretAccessKey": "secret",
		"Token": "token", "Expiration": "2026-01-01T01:00:00Z", "LastUpdated": "2026-01-01T00:00:00Z",
	}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("%s = %q, want %q", k, doc[k], v)
		}
	}
	if _, ok := doc["AccountId"]; ok {
		t.Error("plain document carries AccountId")
	}
	if got := f.creds.keys[0]; got.RoleARN != base+"def" || got.SessionName != "ns.plain" {
		t.Errorf("credential key %+v", got)
	}
	f.creds.err = errors.New("sts down")
	if w := f.do("GET", "/latest/meta-data/iam/security-credentials/def", "10.0.0.3", nil); w.Code != http.StatusServiceUnavailable {
		t.Errorf("with STS failing: %d, want 503", w.Code)
	}
}

func TestTokenFlow(t *testing.T) {
	for _, required := range []bool{false, true} {
		f := newFixture(t, Config{RequireToken: required}, "")
		ttl := map[string]string{TokenTTLHeader: "60"}
		w := f.do("PUT", "/latest/api/token", "10.0.0.1", ttl)
		if w.Code != 200 || w.Header().Get(TokenTTLHeader) != "60" || w.Body.Len() == 0 {
			t.Fatalf("token PUT = %d ttl %q body %q", w.Code, w.Header().Get(TokenTTLHeader), w.Body.String())
		}
		tok := map[string]string{TokenHeader: w.Body.String()}
		creds := "/latest/meta-data/iam/security-credentials/app"
		tests := []struct {
			name   string
			method string
			ip     string
			header map[string]string
			code   int
		}{
			{name: "with token", ip: "10.0.0.1", header: tok, code: 200},
			{name: "another pod's token", ip: "10.0.0.2", header: tok, code: 401},
			{name: "bad token", ip: "10.0.0.1", header: map[string]string{TokenHeader: "nope"}, code: 401},
			{name: "no token", ip: "10.0.0.1", code: map[bool]int{false: 200, true: 401}[required]},
			{name: "PUT without TTL", method: "PUT", ip: "10.0.0.1", code: 400},
			{name: "PUT TTL too long", method: "PUT", ip: "10.0.0.1", header: map[string]string{TokenTTLHeader: "21601"}, code: 400},
			{name: "PUT TTL zero", method: "PUT", ip: "10.0.0.1", header: map[string]string{TokenTTLHeader: "0"}, code: 400},
			{name: "PUT with X-Forwarded-For", method: "PUT", ip: "10.0.0.1", header: map[string]string{TokenTTLHeader: "60", "X-Forwarded-For": "1.2.3.4"}, code: 403},
			{name: "PUT from unknown IP", method: "PUT", ip: "10.9.9.9", header: ttl, code: 404},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				method, path := "GET", creds
				if tt.method == "PUT" {
					method, path = "PUT", "/latest/api/token"
				}
				if w := f.do(method, path, tt.ip, tt.header); w.Code != tt.code {
					t.Fatalf("required=%v: %s %s from %s = %d, want %d", required, method, path, tt.ip, w.Code, tt.code)
				}
			})
		}
	}
}

func TestMetricsHaveNoPodOrRoleLabels(t *testing.T) {
	f := newFixture(t, Config{}, "")
	f.do("GET", "/latest/meta-data/iam/security-credentials/app", "10.0.0.1", nil)
	f.do("GET", "/latest/user-data", "10.0.0.1", nil)
	f.do("GET", "/latest/meta-data/a%5Cb", "10.0.0.1", nil)
	if err := testutil.GatherAndCompare(f.reg, strings.NewReader(`
# HELP metaproxy_requests_total Metadata requests by path class (token, credentials, iam, proxy, denied, not_found, bad_request) and HTTP status code.
# TYPE metaproxy_requests_total counter
metaproxy_requests_total{class="bad_request",code="400"} 1
metaproxy_requests_total{class="credentials",code="200"} 1
metaproxy_requests_total{class="denied",code="403"} 1
`), "metaproxy_requests_total"); err != nil {
		t.Error(err)
	}
}

// FuzzServeHTTP throws arbitrary methods, raw paths, token headers and
// callers at the whole handler: it must never panic, never hand a pod
// another pod's role (or any role to a non-pod) and never let a sensitive
// path reach the upstream.
func FuzzServeHTTP(f *testing.F) {
	fx := newFixture(f, Config{}, "")
	callers := []struct{ ip, role string }{{"10.0.0.1", "app"}, {"10.0.0.2", "other"}, {"10.0.0.3", ""}, {"10.0.0.4", ""}, {"10.9.9.9", ""}, {"::ffff:10.0.0.1", "app"}}
	for _, s := range []string{"/latest/meta-data/iam/security-credentials/app", "/latest//meta-data/%69am/security-credentials/other", "/2016-09-02/user-data", "/latest/api/token", "/latest/meta-data/iam%20/info"} {
		f.Add("GET", s, "", uint8(0))
		f.Add("PUT", s, "60", uint8(1))
	}
	f.Fuzz(func(t *testing.T, method, rawPath, header string, who uint8) {
		u, err := url.ParseRequestURI(rawPath)
		if err != nil || !validMethod(method) {
			return
		}
		c := callers[int(who)%len(callers)]
		r := &http.Request{Method: method, URL: u, Header: http.Header{}, RemoteAddr: net.JoinHostPort(c.ip, "40000"), Host: "169.254.169.254"}
		r = r.WithContext(context.Background())
		r.Header.Set(TokenTTLHeader, header)
		r.Header.Set(TokenHeader, header)
		w := httptest.NewRecorder()
		fx.srv.ServeHTTP(w, r)
		if body := w.Body.String(); strings.Contains(body, "AccessKeyId") && (c.role == "" || !strings.Contains(body, base+c.role+"\"")) {
			t.Fatalf("%s %q from %s handed out %q", method, rawPath, c.ip, body)
		}
		fx.upstream.mu.Lock()
		defer fx.upstream.mu.Unlock()
		for _, p := range fx.upstream.paths {
			if !safeUpstream(p) {
				t.Fatalf("%s %q reached the upstream as %q", method, rawPath, p)
			}
		}
		fx.upstream.paths = fx.upstream.paths[:0]
	})
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range m {
		if c < '!' || c > '~' {
			return false
		}
	}
	return true
}

func TestDecisionsLoggedOnce(t *testing.T) {
	f := newFixture(t, Config{}, "")
	var buf bytes.Buffer
	f.srv.logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	for range 3 {
		f.do("GET", "/latest/meta-data/iam/security-credentials/app", "10.0.0.1", nil)
		f.do("GET", "/latest/meta-data/iam/security-credentials/other", "10.0.0.1", nil)
	}
	f.do("GET", "/latest/meta-data/iam/security-credentials/app", "10.0.0.2", nil) // another pod: its own decision
	out := buf.String()
	if n := strings.Count(out, "msg=granted"); n != 1 {
		t.Errorf("%d grant lines at info, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, "msg=denied"); n != 2 {
		t.Errorf("%d denial lines at info, want 2:\n%s", n, out)
	}
	for _, want := range []string{"namespace=ns", "pod=app", "uid=uid-app", "role=" + base + "app", "reason="} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestRefusalsLoggedOncePerSource: a caller that is not a pod, or that sends
// malformed paths, cannot flood the log at Info with one line per request.
func TestRefusalsLoggedOncePerSource(t *testing.T) {
	tests := []struct {
		name, ip string
		paths    []string
		msg      string
	}{
		{"unknown source", "10.9.9.9", []string{"/latest/meta-data/iam/info", "/latest/meta-data/iam/info", "/latest/meta-data/placement/region"}, "unknown source"},
		{"malformed paths", "10.0.0.1", []string{"/latest/%2500a", "/latest/a;b", "/latest/%2500b"}, "malformed metadata path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{}, "")
			var buf bytes.Buffer
			f.srv.logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
			for _, p := range tt.paths {
				f.do("GET", p, tt.ip, nil)
			}
			if n := strings.Count(buf.String(), tt.msg); n != 1 {
				t.Fatalf("%d info lines with %q, want 1:\n%s", n, tt.msg, buf.String())
			}
		})
	}
}

// TestDecisionMemoBounded: the once-only logging memo must not hold what
// pods send. Paths are up to 1 KiB, so keeping them would let one pod pin
// maxDecisions × 1 KiB (16 MiB, beyond metaproxy's whole memory budget).
func TestDecisionMemoBounded(t *testing.T) {
	f := newFixture(t, Config{}, "")
	long := strings.Repeat("x", 900)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range maxDecisions {
		w := f.do("GET", "/latest/meta-data/iam/"+long+strconv.Itoa(i), "10.0.0.1", nil)
		if w.Code != http.StatusForbidden {
			t.Fatalf("denied path got %d", w.Code)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(f.srv)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 4<<20 {
		t.Fatalf("heap grew by %d bytes after %d distinct denied paths; the memo keeps what pods send", grown, maxDecisions)
	}
}

// slowCreds takes a while to fetch, and gives up if its caller's context
// ends, as creds.Cache does.
type slowCreds struct{ fakeCreds }

func (s *slowCreds) Get(ctx context.Context, k creds.Key) (creds.Credentials, error) {
	select {
	case <-ctx.Done():
		return creds.Credentials{}, ctx.Err()
	case <-time.After(300 * time.Millisecond):
	}
	return s.fakeCreds.Get(ctx, k)
}

// TestHalfClosedClientGetsItsCredentials: a client that closes its side of
// the connection after sending its request (busybox nc does) still reads
// the answer; net/http cancels the request's context at that EOF, which
// must not turn a credentials fetch under way into a 503. (On the real
// node, a pod's first request after a node restart got one.)
func TestHalfClosedClientGetsItsCredentials(t *testing.T) {
	policy, err := role.New(role.Config{BaseRoleARN: base, RoleKey: "iam.amazonaws.com/role"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pods := podsByIP{"127.0.0.1": mkpod("ns", "app", "uid-app", "app")}
	srv, err := New(Config{}, Deps{Caller: pods, Roles: policy, Credentials: &slowCreds{}, Upstream: &fakeUpstream{}},
		prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /latest/meta-data/iam/security-credentials/app HTTP/1.0\r\nHost: 169.254.169.254\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	answer, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(answer, []byte("HTTP/1.0 200")) || !bytes.Contains(answer, []byte(`"AccessKeyId"`)) {
		t.Fatalf("a half-closed client was answered:\n%s", answer)
	}
}
