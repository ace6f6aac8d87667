package agent

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func newTestOps(t *testing.T, pprof bool) *Ops {
	t.Helper()
	return NewOps(OpsConfig{EnablePprof: pprof}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

// TestReadyzFollowsConditions: /readyz evaluates every condition at each
// request, whatever its shape, and is 200 only while all hold.
func TestReadyzFollowsConditions(t *testing.T) {
	ops := newTestOps(t, false)
	var synced atomic.Bool
	ops.Check("informers", func() (bool, string) { return synced.Load(), "pod informer not synced" })
	firstSend := make(chan struct{})
	ops.Check("first-send", Closed(firstSend, "no batch accepted yet"))
	var stuck atomic.Value
	stuck.Store("")
	ops.Check("upstream", func() (bool, string) { s := stuck.Load().(string); return s == "", s })
	legacy := ops.Gate("legacy-gate")
	legacy.Set(true)

	steps := []struct {
		name     string
		change   func()
		wantCode int
		wantBody string
	}{
		{"nothing ready yet", func() {}, http.StatusServiceUnavailable, "[-] informers not ready: pod informer not synced"},
		{"one condition holds", func() { synced.Store(true) }, http.StatusServiceUnavailable, "[-] first-send not ready: no batch accepted yet"},
		{"every condition holds", func() { close(firstSend) }, http.StatusOK, "[+] first-send ok"},
		{"a condition falls back", func() { synced.Store(false) }, http.StatusServiceUnavailable, "informers not ready: pod informer not synced"},
		{"a condition says why not", func() { synced.Store(true); stuck.Store("access denied: allow x") }, http.StatusServiceUnavailable, "[-] upstream not ready: access denied: allow x"},
		{"it holds again", func() { stuck.Store("") }, http.StatusOK, "[+] upstream ok"},
		{"a gate set from outside counts too", func() { legacy.SetWithReason(false, "watch lost") }, http.StatusServiceUnavailable, "[-] legacy-gate not ready: watch lost"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.change()
			code, body := get(t, ops.Handler(), "/readyz")
			if code != s.wantCode || !strings.Contains(body, s.wantBody) {
				t.Fatalf("GET /readyz = %d %q, want %d containing %q", code, body, s.wantCode, s.wantBody)
			}
			if ops.Ready() != (s.wantCode == http.StatusOK) {
				t.Fatalf("Ready() = %v with /readyz %d", ops.Ready(), code)
			}
		})
	}
}

func TestOpsEndpoints(t *testing.T) {
	tests := []struct {
		name     string
		pprof    bool
		path     string
		wantCode int
		wantBody string
	}{
		{"healthz", false, "/healthz", http.StatusOK, "ok"},
		{"metrics carry process metrics", false, "/metrics", http.StatusOK, "go_goroutines"},
		{"pprof off by default", false, "/debug/pprof/", http.StatusNotFound, ""},
		{"pprof when asked", true, "/debug/pprof/", http.StatusOK, "goroutine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := get(t, newTestOps(t, tt.pprof).Handler(), tt.path)
			if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
				t.Fatalf("GET %s = %d %q, want %d containing %q", tt.path, code, body, tt.wantCode, tt.wantBody)
			}
		})
	}
}

func TestServeStopsWithContext(t *testing.T) {
	ops := newTestOps(t, false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- ops.Serve(ctx, ln) }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz on the live server: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz = %d", resp.StatusCode)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel = %v, want nil", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("listener still accepts connections after shutdown")
	}
}
