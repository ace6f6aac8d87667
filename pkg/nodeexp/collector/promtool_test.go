package collector

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// promtoolProblemKinds are the lint findings node_exporter's own output
// has (its netstat, memory and sockstat names keep the kernel's
// CamelCase; entropy is in bits): nodeexp keeps those names on purpose.
var promtoolProblemKinds = []string{
	"metric names should be written in 'snake_case' not 'camelCase'",
	`use base unit "bytes" instead of "bits"`,
}

func promtoolBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PROMTOOL"); p != "" {
		return p
	}
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	if cache, err := os.UserCacheDir(); err == nil {
		p := filepath.Join(cache, "nodekit", "promtool", "x", "usr", "bin", "promtool")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("promtool not found: install Debian's prometheus package or set PROMTOOL")
	return ""
}

// TestPromtoolCheckMetrics lints the fixture output (which includes the pod
// collector and the textfile collector) and the live output.
func TestPromtoolCheckMetrics(t *testing.T) {
	bin := promtoolBinary(t)
	fixture, err := newFixtureExporter(t, nil).Gatherer(context.Background()).Gather()
	if err != nil {
		t.Fatal(err)
	}
	e := newExporter(t, DefaultConfig())
	live, err := e.Gatherer(context.Background()).Gather()
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{"fixture": exposition(t, fixture), "live": exposition(t, live)} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(bin, "check", "metrics")
			cmd.Stdin = bytes.NewReader(body)
			out, _ := cmd.CombinedOutput() // exits 1 whenever it finds anything
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if line == "" {
					continue
				}
				known := false
				for _, k := range promtoolProblemKinds {
					if strings.HasSuffix(line, k) && !strings.HasPrefix(line, "nodeexp_") {
						known = true
					}
				}
				if !known {
					t.Errorf("promtool: %s", line)
				}
			}
		})
	}
}
