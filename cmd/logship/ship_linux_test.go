package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/nodekit/nodekit/pkg/agent"
	"github.com/nodekit/nodekit/pkg/logship"
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

// TestHelpExplainsEveryFlag: --help lists every flag the command has,
// each with its explanation, and the command has every flag of the
// command-line contract (DESIGN.md).
func TestHelpExplainsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	if _, err := parse([]string{"--help"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	fs := newFlagSet(&options{ship: logship.DefaultConfig()})
	if gaps := agent.HelpGaps(fs, out.String()); len(gaps) > 0 {
		t.Errorf("--help does not explain %v:\n%s", gaps, out.String())
	}
	for _, name := range []string{"containers-dir", "state-dir", "cluster-name", "log-group", "log-stream", "metrics-addr",
		"include-namespaces", "exclude-namespaces", "log-level", "log-format", "kubeconfig", "node-name", "version"} {
		if fs.Lookup(name) == nil {
			t.Errorf("no --%s flag", name)
		}
	}
	for _, want := range []string{"logship query", "nodekit.io/logship"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help does not mention %s:\n%s", want, out.String())
		}
	}
}
