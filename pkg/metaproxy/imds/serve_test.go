package imds

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestServeStopsWithContext(t *testing.T) {
	f := newFixture(t, Config{}, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(ctx, ln) }()
	// 127.0.0.1 is no pod: a real request gets the unknown-caller 404 after
	// the fake resolver refuses it.
	resp, err := http.Get("http://" + ln.Addr().String() + "/latest/meta-data/iam/info")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown caller got %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel: %v", err)
	}
}

// BenchmarkCredentials is the in-process cost of a credential request with a
// warm cache: normalise, classify, resolve the pod and role, render JSON.
func BenchmarkCredentials(b *testing.B) {
	f := newFixture(b, Config{}, "")
	r := httptest.NewRequest("GET", "/latest/meta-data/iam/security-credentials/app", nil)
	r.RemoteAddr = "10.0.0.1:40000"
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		f.srv.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
