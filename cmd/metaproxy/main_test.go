package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/nodekit/nodekit/pkg/agent"
	"github.com/nodekit/nodekit/pkg/metaproxy"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		usage bool
		check func(*options) bool
	}{
		{name: "defaults", args: nil, check: func(o *options) bool {
			p := o.proxy
			return p.MetricsAddr == "127.0.0.1:9181" && p.MetadataAddr == "169.254.169.254:80" && p.Role.RoleKey == "iam.amazonaws.com/role" &&
				p.Role.ExternalIDKey == "iam.amazonaws.com/external-id" && !p.IPTables && !p.IMDS.RequireToken && !o.enablePprof
		}},
		{name: "kube2iam names", args: []string{"--base-role-arn=arn:aws:iam::123456789012:role/", "--default-role=def", "--iptables", "--host-interface=cali+", "--namespace-restrictions", "--require-imdsv2"}, check: func(o *options) bool {
			p := o.proxy
			return p.IPTables && p.HostInterface == "cali+" && p.Role.NamespaceRestrictions && p.Role.DefaultRole == "def" && p.IMDS.RequireToken
		}},
		{name: "node name into the configuration", args: []string{"--node-name=node-a"}, check: func(o *options) bool { return o.proxy.NodeName == "node-a" }},
		{name: "positional", args: []string{"serve"}, usage: true},
		{name: "unknown flag", args: []string{"--nope"}, usage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			o, err := parse(tt.args, &out)
			var usage *agent.UsageError
			if tt.usage {
				if !errors.As(err, &usage) {
					t.Fatalf("parse(%q) error = %v, want a usage error", tt.args, err)
				}
				return
			}
			if err != nil || !tt.check(o) {
				t.Fatalf("parse(%q) = %+v, %v", tt.args, o, err)
			}
		})
	}
}

// TestCommandLine: usage errors exit 2 before anything starts, other
// failures exit 1.
func TestCommandLine(t *testing.T) {
	t.Setenv("NODE_NAME", "")
	t.Setenv("HOST_IP", "")
	node := []string{"--node-name=node-a", "--host-ip=10.0.0.1"}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		// Help goes to the process's stderr (TestHelpExplainsEveryFlag reads it).
		{"help", []string{"--help"}, 0, ""},
		{"version", []string{"--version"}, 0, "metaproxy "},
		{"uninstall help", []string{"uninstall", "--help"}, 0, ""},
		{"unknown flag", []string{"--nope"}, 2, "-nope"},
		{"stray argument", append(node, "serve"), 2, "unexpected arguments"},
		{"uninstall stray argument", []string{"uninstall", "now"}, 2, "unexpected arguments"},
		{"no node name", []string{"--host-ip=10.0.0.1"}, 2, "--node-name is required"},
		{"bad pod wait", append(node, "--pod-wait=0s"), 2, "--pod-wait"},
		{"bad session duration", append(node, "--session-duration=5m"), 2, "--session-duration"},
		{"metrics on the metadata listener", append(node, "--metrics-addr=:8181"), 2, "overlaps --listen-addr"},
		{"bad interface pattern", append(node, "--iptables", "--host-interface=cali+ -j ACCEPT"), 2, "host interface"},
		{"bad log format", append(node, "--log-format=xml"), 2, "--log-format"},
		{"unreadable kubeconfig", append(node, "--kubeconfig=/nonexistent/kubeconfig"), 1, "kubeconfig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := agent.Exec("metaproxy", run, tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("exit code %d, want %d; stderr: %s", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String()+stderr.String(), tt.wantOut) {
				t.Fatalf("output does not mention %q:\n%s%s", tt.wantOut, stdout.String(), stderr.String())
			}
		})
	}
}

// TestHelpExplainsEveryFlag: --help lists every flag the command has,
// each with its explanation, and the command has every flag of the
// command-line contract (DESIGN.md; kube2iam's names where they overlap).
func TestHelpExplainsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	if _, err := parse([]string{"--help"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	fs := newFlagSet(&options{proxy: metaproxy.DefaultConfig()})
	if gaps := agent.HelpGaps(fs, out.String()); len(gaps) > 0 {
		t.Errorf("--help does not explain %v:\n%s", gaps, out.String())
	}
	if !strings.Contains(out.String(), "metaproxy uninstall") {
		t.Errorf("--help does not show the uninstall subcommand:\n%s", out.String())
	}
	for _, name := range []string{"host-ip", "listen-addr", "metrics-addr", "host-interface", "iptables", "metadata-addr", "base-role-arn", "default-role", "namespace-restrictions", "iam-role-key", "iam-external-id-key", "session-duration", "log-level", "log-format", "kubeconfig", "node-name", "version"} {
		if fs.Lookup(name) == nil {
			t.Errorf("no --%s flag", name)
		}
	}
}
