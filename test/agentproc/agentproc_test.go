package agentproc

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLastLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{{"1\n2\n3\n", 2, "2\n3"}, {"one", 5, "one"}, {"", 1, ""}} {
		if got := LastLines(tc.in, tc.n); got != tc.want {
			t.Errorf("LastLines(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// TestLifecycle: a process that answers becomes ready, Stop ends it with
// SIGTERM; one that exits early is reported with its log.
func TestLifecycle(t *testing.T) {
	dir := t.TempDir()
	// Ready once the process said so in its log.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if b, _ := os.ReadFile(filepath.Join(dir, "sleeper.log")); !strings.Contains(string(b), "started") {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	p, err := Start(Root{}, Spec{Name: "sleeper", Bin: "sh", Args: []string{"-c", "echo started; exec sleep 60"}, LogDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.WaitReady(ctx, srv.Client(), srv.URL); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if done, _ := p.Exited(); !done || !strings.Contains(p.Tail(5), "started") {
		t.Fatalf("after Stop: exited %v, log %q", done, p.Tail(5))
	}

	q, err := Start(Root{}, Spec{Name: "quitter", Bin: "sh", Args: []string{"-c", "echo bad flag; exit 2"}, LogDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	never := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer never.Close()
	if err := q.WaitReady(ctx, never.Client(), never.URL); err == nil || !strings.Contains(err.Error(), "bad flag") {
		t.Fatalf("WaitReady for a process that exited = %v, want its log", err)
	}
}
