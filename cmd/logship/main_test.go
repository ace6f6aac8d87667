package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/nodekit/nodekit/pkg/agent"
)

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"help", []string{"--help"}, 0, ""},
		{"version", []string{"--version"}, 0, ""},
		{"query_help", []string{"query", "--help"}, 0, ""},
		{"query_bad_flag", []string{"query", "--no-such-flag"}, 2, "no-such-flag"},
		{"query_bad_time", []string{"query", "--cluster=c", "--since=yesterday-ish"}, 2, "since"},
		{"bad_flag", []string{"--no-such-flag"}, 2, "no-such-flag"},
		{"cluster_required", []string{"--node-name=n"}, 2, "--cluster-name"},
		{"bad_multiline", []string{"--multiline=ns=(("}, 2, "multiline"},
		{"stray_argument", []string{"--cluster-name=c", "extra"}, 2, "unexpected arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := agent.Exec("logship", run, tc.args, &stdout, &stderr)
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d; stderr: %s", code, tc.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String()+stdout.String(), tc.wantErr) {
				t.Fatalf("output does not mention %q:\n%s%s", tc.wantErr, stdout.String(), stderr.String())
			}
		})
	}
}

func TestHelpExplainsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	if _, err := parse([]string{"--help"}, &out); err == nil {
		t.Fatal("--help returned no error")
	}
	for _, f := range []string{"containers-dir", "state-dir", "cluster-name", "log-group", "log-stream", "metrics-addr",
		"include-namespaces", "exclude-namespaces", "retention-days", "log-level", "log-format", "kubeconfig", "node-name", "version", "nodekit.io/logship"} {
		if !strings.Contains(out.String(), f) {
			t.Errorf("--help does not mention %s", f)
		}
	}
}
