package imds

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
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

// TestRawRequestShapes sends request lines and headers as a hostile pod
// would type them, through a real listener, so Go's own request parsing
// (absolute-form URIs, HTTP/1.0, header casing and duplicates) is part of
// what is checked.
func TestRawRequestShapes(t *testing.T) {
	f := newFixture(t, Config{}, "")
	f.srv.deps.Caller.(podsByIP)["127.0.0.1"] = mkpod("ns", "loop", "uid-loop", "app")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	tok := f.srv.tokens.Issue(netip.MustParseAddr("127.0.0.1"), "uid-loop", time.Minute)
	otherTok := f.srv.tokens.Issue(netip.MustParseAddr("10.0.0.2"), "uid-other", time.Minute)
	tests := []struct {
		name, raw string
		code      int
	}{
		{"absolute-form other role", "GET http://169.254.169.254/latest/meta-data/iam/security-credentials/other HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n", 403},
		{"absolute-form user-data", "GET http://169.254.169.254/latest/user-data HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n", 403},
		{"absolute-form other host", "GET http://evil.example/latest/meta-data/iam/security-credentials/app HTTP/1.1\r\nHost: evil.example\r\n\r\n", 200},
		{"HTTP/1.0 no host", "GET /latest/meta-data/iam/security-credentials/app HTTP/1.0\r\n\r\n", 200},
		{"HTTP/1.0 user-data", "GET /latest/user-data HTTP/1.0\r\n\r\n", 403},
		// net/http answers "OPTIONS *" itself, with an empty 200.
		{"asterisk form", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 200},
		{"fragment", "GET /latest/meta-data/iam/security-credentials/app#x HTTP/1.1\r\nHost: x\r\n\r\n", 403},
		{"query", "GET /latest/meta-data/iam/security-credentials/app?x=/../../user-data HTTP/1.1\r\nHost: x\r\n\r\n", 200},
		{"lowercase token header", "GET /latest/meta-data/iam/info HTTP/1.1\r\nHost: x\r\nx-aws-ec2-metadata-token: " + tok + "\r\n\r\n", 200},
		{"another pod's token, odd casing", "GET /latest/meta-data/iam/info HTTP/1.1\r\nHost: x\r\nX-AWS-EC2-METADATA-TOKEN: " + otherTok + "\r\n\r\n", 401},
		{"duplicate token headers", "GET /latest/meta-data/iam/info HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token: " + tok + "\r\nx-aws-ec2-metadata-token: " + tok + "\r\n\r\n", 401},
		{"token request with lowercase x-forwarded-for", "PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nx-aws-ec2-metadata-token-ttl-seconds: 60\r\nx-forwarded-for: 10.0.0.2\r\n\r\n", 403},
		{"token request with empty X-Forwarded-For", "PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nX-Forwarded-For:\r\n\r\n", 403},
		{"token TTL 21601", "PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: 21601\r\n\r\n", 400},
		{"token TTL 0", "PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: 0\r\n\r\n", 400},
		{"token TTL 21600", "PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\n\r\n", 200},
		{"token TTL missing", "PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 400},
		{"CONNECT tunnel to the real service", "CONNECT 169.254.169.254:80 HTTP/1.1\r\nHost: 169.254.169.254:80\r\n\r\n", 405},
		{"DELETE", "DELETE /latest/meta-data/iam/info HTTP/1.1\r\nHost: x\r\n\r\n", 405},
		{"lowercase method", "get /latest/meta-data/iam/info HTTP/1.1\r\nHost: x\r\n\r\n", 405},
		{"backslash", "GET /latest/meta-data\\..\\user-data HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"encoded NUL", "GET /latest/meta-data/iam%00/info HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"very long path", "GET /latest/meta-data/" + strings.Repeat("a/", 3000) + " HTTP/1.1\r\nHost: x\r\n\r\n", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, tt.raw); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.code {
				t.Fatalf("%q: %d %q, want %d", tt.raw, resp.StatusCode, body, tt.code)
			}
		})
	}
	f.upstream.mu.Lock()
	defer f.upstream.mu.Unlock()
	if len(f.upstream.paths) != 0 {
		t.Errorf("reached the upstream: %q", f.upstream.paths)
	}
}

// TestConnectionsCappedPerSource: one pod opening connections without end
// must not exhaust metaproxy's file descriptors and memory for every other
// pod; connections over the cap are closed at once.
func TestConnectionsCappedPerSource(t *testing.T) {
	f := newFixture(t, Config{MaxConnsPerSource: 2}, "")
	f.srv.deps.Caller.(podsByIP)["127.0.0.1"] = mkpod("ns", "loop", "uid-loop", "app")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	const req = "GET /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\nHost: x\r\n\r\n"
	// ask sends one keep-alive request on conn and reports whether it was answered.
	ask := func(conn net.Conn) bool {
		if _, err := io.WriteString(conn, req); err != nil {
			return false
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	dial := func() net.Conn {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	first, second := dial(), dial()
	if !ask(first) || !ask(second) {
		t.Fatal("connections within the cap were not served")
	}
	if ask(dial()) {
		t.Fatal("a third concurrent connection from one source was served; want it closed")
	}
	// Closing one frees its place once the server has seen it go; that is
	// the server's own goroutine, so poll for it, bounded.
	first.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !ask(dial()) {
		if time.Now().After(deadline) {
			t.Fatal("a closed connection's place was never freed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
