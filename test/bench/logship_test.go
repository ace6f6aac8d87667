package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestCRILine(t *testing.T) {
	ts := time.Date(2026, 11, 22, 1, 2, 3, 4000, time.UTC)
	for _, seq := range []int64{0, 7, 999_999_999, 12_345_678_901} {
		l := criLine(nil, ts, 3, seq)
		if len(l) != lsLineBytes || l[len(l)-1] != '\n' || bytes.Count(l, []byte("\n")) != 1 {
			t.Fatalf("seq %d: line %q is %d bytes, want %d ending in one newline", seq, l, len(l), lsLineBytes)
		}
		f := strings.SplitN(string(l), " ", 4)
		if got, err := time.Parse(time.RFC3339Nano, f[0]); err != nil || !got.Equal(ts) {
			t.Errorf("timestamp %q: %v %v", f[0], got, err)
		}
		if f[1] != "stdout" || f[2] != "F" {
			t.Errorf("not a full stdout CRI line: %q", l)
		}
	}
}

func TestWriteCRIFile(t *testing.T) {
	path := t.TempDir() + "/0.log"
	n, err := writeCRIFile(path, 0, 10*lsLineBytes+1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if n != 11 {
		t.Errorf("wrote %d lines, want 11 (size rounded up to whole lines)", n)
	}
	if _, err := writeCRIFile(t.TempDir()+"/missing/0.log", 0, 1, time.Now()); err == nil {
		t.Error("no error writing into a missing directory")
	}
}

func TestEventCounter(t *testing.T) {
	status := http.StatusOK
	var gotBody string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		w.WriteHeader(status)
	})
	c := newEventCounter(next)
	srv := httptest.NewServer(c)
	defer srv.Close()
	put := func(target, body string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		req.Header.Set("X-Amz-Target", target)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if gotBody != body {
			t.Fatalf("wrapped handler got body %q, want %q", gotBody, body)
		}
	}
	events := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"logEvents":[`)
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			// A message quoting the key must not count twice.
			fmt.Fprintf(&b, `{"message":"{\"timestamp\":1}","timestamp":%d}`, i)
		}
		b.WriteString(`],"logGroupName":"g"}`)
		return b.String()
	}
	put("Logs_20140328.PutLogEvents", events(3))
	put("Logs_20140328.CreateLogStream", events(5)) // not a put
	status = http.StatusBadRequest
	put("Logs_20140328.PutLogEvents", events(7)) // refused
	status = http.StatusOK
	put("Logs_20140328.PutLogEvents", events(2))
	if got := c.accepted.Load(); got != 5 {
		t.Errorf("accepted = %d, want 5", got)
	}
	if got, want := c.bodyBytes.Load(), int64(len(events(3))+len(events(2))); got != want {
		t.Errorf("body bytes = %d, want %d (the accepted puts only)", got, want)
	}
	if err := c.wait(t.Context(), 5); err != nil {
		t.Errorf("wait for what was counted: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.wait(ctx, 6); err == nil {
		t.Error("wait for more than was counted returned without error")
	}
}

// wait must wake on a count that arrives after it started waiting.
func TestEventCounterWakes(t *testing.T) {
	c := newEventCounter(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv := httptest.NewServer(c)
	defer srv.Close()
	done := make(chan error, 1)
	go func() { done <- c.wait(t.Context(), 1) }()
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(`{"logEvents":[{"message":"m","timestamp":1}]}`))
	req.Header.Set("X-Amz-Target", "Logs_20140328.PutLogEvents")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
