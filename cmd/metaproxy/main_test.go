package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/nodekit/nodekit/pkg/agent"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		usage bool
		check func(*options) bool
	}{
		{name: "defaults", args: nil, check: func(o *options) bool {
			return o.metricsAddr == "127.0.0.1:9181" && o.metadataAddr == "169.254.169.254:80" && o.role.RoleKey == "iam.amazonaws.com/role" &&
				o.role.ExternalIDKey == "iam.amazonaws.com/external-id" && !o.iptables && !o.imds.RequireToken
		}},
		{name: "kube2iam names", args: []string{"--base-role-arn=arn:aws:iam::123456789012:role/", "--default-role=def", "--iptables", "--host-interface=cali+", "--namespace-restrictions", "--require-imdsv2"}, check: func(o *options) bool {
			return o.iptables && o.hostInterface == "cali+" && o.role.NamespaceRestrictions && o.role.DefaultRole == "def" && o.imds.RequireToken
		}},
		{name: "bad pod wait", args: []string{"--pod-wait=0s"}, usage: true},
		{name: "positional", args: []string{"serve"}, usage: true},
		{name: "unknown flag", args: []string{"--nope"}, usage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parse(tt.args, io.Discard)
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

// TestHelpExplainsEveryFlag: --help lists every flag the command has,
// each with its explanation, and the command has every flag of the
// command-line contract (DESIGN.md; kube2iam's names where they overlap).
func TestHelpExplainsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	if _, err := parse([]string{"--help"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	fs := flag.NewFlagSet("metaproxy", flag.ContinueOnError)
	register(fs, &options{})
	if gaps := agent.HelpGaps(fs, out.String()); len(gaps) > 0 {
		t.Errorf("--help does not explain %v:\n%s", gaps, out.String())
	}
	for _, name := range []string{"host-ip", "listen-addr", "metrics-addr", "host-interface", "iptables", "metadata-addr", "base-role-arn", "default-role", "namespace-restrictions", "iam-role-key", "iam-external-id-key", "session-duration", "log-level", "log-format", "kubeconfig", "node-name", "version"} {
		if fs.Lookup(name) == nil {
			t.Errorf("no --%s flag", name)
		}
	}
	if !strings.Contains(out.String(), "metaproxy uninstall") {
		t.Errorf("--help does not show the uninstall subcommand:\n%s", out.String())
	}
}

func TestAddresses(t *testing.T) {
	tests := []struct {
		listen, metrics string
		ok              bool
	}{
		{"10.0.0.1:8181", "127.0.0.1:9181", true},
		{"10.0.0.1:8181", "10.0.0.1:8181", false},
		{"10.0.0.1:8181", "0.0.0.0:8181", false},
		{"10.0.0.1:8181", ":8181", false},
		{"10.0.0.1:8181", "10.0.0.2:8181", true},
	}
	for _, tt := range tests {
		o := &options{listenAddr: tt.listen, metricsAddr: tt.metrics}
		if err := o.validateAddrs(); (err == nil) != tt.ok {
			t.Errorf("listen %s metrics %s: %v, want ok=%v", tt.listen, tt.metrics, err, tt.ok)
		}
	}
	o := &options{hostIP: "10.0.0.7"}
	if err := o.discover(); err != nil || o.listenAddr != "10.0.0.7:8181" {
		t.Errorf("listen address from --host-ip: %q, %v", o.listenAddr, err)
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, &out); err != nil || !strings.HasPrefix(out.String(), "metaproxy ") {
		t.Fatalf("--version = %q, %v", out.String(), err)
	}
}
