package agent

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
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

func TestReadyzFollowsGates(t *testing.T) {
	ops := newTestOps(t, false)
	informer := ops.Gate("informer")
	send := ops.Gate("first-send")
	var stuck string
	ops.Check("upstream", func() (bool, string) { return stuck == "", stuck })

	steps := []struct {
		name     string
		change   func()
		wantCode int
		wantBody string
	}{
		{"no gate ready", func() {}, http.StatusServiceUnavailable, "[-] informer not ready: starting"},
		{"one gate ready", func() { informer.Set(true) }, http.StatusServiceUnavailable, "[-] first-send not ready"},
		{"every gate ready", func() { send.Set(true) }, http.StatusOK, "ready"},
		{"a gate falls back", func() { informer.SetWithReason(false, "watch lost") }, http.StatusServiceUnavailable, "informer not ready: watch lost"},
		{"a check says why not", func() { informer.Set(true); stuck = "access denied: allow x" }, http.StatusServiceUnavailable, "[-] upstream not ready: access denied: allow x"},
		{"the check passes again", func() { stuck = "" }, http.StatusOK, "[+] upstream ok"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.change()
			code, body := get(t, ops.Handler(), "/readyz")
			if code != s.wantCode || !strings.Contains(body, s.wantBody) {
				t.Fatalf("GET /readyz = %d %q, want %d containing %q", code, body, s.wantCode, s.wantBody)
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
