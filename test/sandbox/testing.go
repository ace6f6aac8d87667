package sandbox

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
)

// RequireRoot fails the test unless it runs as root. Sandbox tests do not
// skip: CI runs as root, and a silent skip would hide that nothing ran.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if uid := os.Geteuid(); uid != 0 {
		tb.Fatalf("this test builds network namespaces and must run as root (uid is %d); run it with sudo or as root, as `make test` does", uid)
	}
}

// Start creates a sandbox for a test and registers its Close with
// tb.Cleanup, so it is removed when the test ends, also after t.Fatal or a
// panic. It fails the test if not root or if the sandbox cannot be built.
func Start(tb testing.TB, cfg Config) *Sandbox {
	tb.Helper()
	RequireRoot(tb)
	logger := slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sb, err := New(context.Background(), cfg, logger)
	if err != nil {
		tb.Fatalf("starting sandbox: %v", err)
	}
	tb.Cleanup(func() {
		if err := sb.Close(); err != nil {
			tb.Errorf("cleaning up sandbox: %v", err)
		}
	})
	return sb
}

// AddPod is Sandbox.AddPod for tests: it fails the test on error.
func AddPod(tb testing.TB, sb *Sandbox) *Pod {
	tb.Helper()
	p, err := sb.AddPod(context.Background())
	if err != nil {
		tb.Fatalf("adding pod: %v", err)
	}
	return p
}

// tbWriter sends the sandbox's log lines to the test log.
type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Helper()
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
