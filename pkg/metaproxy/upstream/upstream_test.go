package upstream

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeIMDS is a metadata service that demands its own token.
type fakeIMDS struct {
	mu      sync.Mutex
	puts    int
	token   string
	headers []http.Header
	uris    []string
}

func (f *fakeIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method == http.MethodPut && r.URL.Path == tokenPath {
		f.puts++
		f.token = "upstream-token-" + strings.Repeat("x", f.puts)
		w.Header().Set(tokenTTLHeader, r.Header.Get(tokenTTLHeader))
		io.WriteString(w, f.token)
		return
	}
	f.headers = append(f.headers, r.Header.Clone())
	f.uris = append(f.uris, r.RequestURI)
	if r.Header.Get(tokenHeader) != f.token {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	io.WriteString(w, "eu-west-1")
}

func TestProxyUsesOneCachedTokenAndCleanHeaders(t *testing.T) {
	imds := &fakeIMDS{}
	srv := httptest.NewServer(imds)
	defer srv.Close()
	u, err := New(Config{Addr: strings.TrimPrefix(srv.URL, "http://")}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		r := httptest.NewRequest("GET", "/latest/meta-data/placement/region?pod=query", nil)
		r.Header.Set("X-Forwarded-For", "6.6.6.6")
		r.Header.Set(tokenHeader, "the-pod's-token")
		r.Header.Set("Cookie", "secret")
		w := httptest.NewRecorder()
		u.ServeHTTP(w, r)
		if w.Code != 200 || w.Body.String() != "eu-west-1" {
			t.Fatalf("proxied region = %d %q", w.Code, w.Body.String())
		}
	}
	imds.mu.Lock()
	defer imds.mu.Unlock()
	if imds.puts != 1 {
		t.Errorf("%d upstream token requests for 3 proxied requests, want 1", imds.puts)
	}
	for i, h := range imds.headers {
		if h.Get("X-Forwarded-For") != "" || h.Get("Cookie") != "" || h.Get(tokenHeader) != imds.token {
			t.Errorf("request %d reached the service with headers %v", i, h)
		}
		if imds.uris[i] != "/latest/meta-data/placement/region" {
			t.Errorf("request %d URI %q", i, imds.uris[i])
		}
	}
}

func TestTokenRefetchedAfter401(t *testing.T) {
	imds := &fakeIMDS{}
	srv := httptest.NewServer(imds)
	defer srv.Close()
	u, err := New(Config{Addr: strings.TrimPrefix(srv.URL, "http://")}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	imds.mu.Lock()
	imds.token = "rotated" // the service restarted
	imds.mu.Unlock()
	if err := u.Check(context.Background()); err == nil {
		t.Fatal("Check passed with a stale token")
	}
	if err := u.Check(context.Background()); err != nil {
		t.Fatalf("Check after 401 did not fetch a new token: %v", err)
	}
}

func TestCheckFailsWhenServiceDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := strings.TrimPrefix(srv.URL, "http://")
	srv.Close()
	u, err := New(Config{Addr: addr}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Check(context.Background()); err == nil {
		t.Fatal("Check passed with no metadata service")
	}
	w := httptest.NewRecorder()
	u.ServeHTTP(w, httptest.NewRequest("GET", "/latest/meta-data/", nil))
	if w.Code != http.StatusBadGateway {
		t.Fatalf("proxy with no service = %d, want 502", w.Code)
	}
}

// TestProxyDropsPodBodyAndTrailers: nothing a pod sends besides the path
// reaches the metadata service; trailers are headers too.
func TestProxyDropsPodBodyAndTrailers(t *testing.T) {
	type seen struct {
		body    string
		trailer http.Header
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			io.WriteString(w, "tok")
			return
		}
		b, _ := io.ReadAll(r.Body)
		got <- seen{body: string(b), trailer: r.Trailer.Clone()}
		io.WriteString(w, "eu-west-1")
	}))
	defer srv.Close()
	u, err := New(Config{Addr: strings.TrimPrefix(srv.URL, "http://")}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		length  int64
		chunked bool
	}{
		{name: "content-length body", length: 8},
		{name: "chunked body with trailer", length: -1, chunked: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/latest/meta-data/placement/region", strings.NewReader("pod body"))
			r.ContentLength = tt.length
			if tt.chunked {
				r.TransferEncoding = []string{"chunked"}
				r.Trailer = http.Header{"X-Forwarded-For": {"6.6.6.6"}, "X-Aws-Ec2-Metadata-Token": {"pod-token"}}
			}
			w := httptest.NewRecorder()
			u.ServeHTTP(w, r)
			if w.Code != 200 {
				t.Fatalf("proxied = %d %q", w.Code, w.Body.String())
			}
			s := <-got
			if s.body != "" || len(s.trailer) != 0 {
				t.Fatalf("metadata service got body %q and trailers %v from the pod", s.body, s.trailer)
			}
		})
	}
}
