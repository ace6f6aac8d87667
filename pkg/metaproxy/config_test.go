package metaproxy

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodekit/nodekit/pkg/metaproxy/creds"
	"github.com/nodekit/nodekit/pkg/metaproxy/role"
)

// validConfig is a configuration Validate accepts: the defaults, a node,
// the role flags' defaults and a discovered listen address.
func validConfig() Config {
	c := DefaultConfig()
	c.NodeName = "node-a"
	c.Role = role.Config{RoleKey: "iam.amazonaws.com/role", ExternalIDKey: "iam.amazonaws.com/external-id", RestrictionFormat: role.MatchGlob}
	c.ListenAddr = "10.0.0.1:8181"
	return c
}

func TestDefaultConfigMatchesFlags(t *testing.T) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("metaproxy", flag.ContinueOnError)
	c.RegisterFlags(fs)
	for name, want := range map[string]string{
		"metrics-addr": "127.0.0.1:9181", "metadata-addr": "169.254.169.254:80", "session-duration": "1h0m0s",
		"pod-wait": "800ms", "iam-role-key": "iam.amazonaws.com/role", "iptables": "false", "host-interface": "",
	} {
		if got := fs.Lookup(name).DefValue; got != want {
			t.Errorf("--%s defaults to %q, want %q", name, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string // empty: valid
	}{
		{"valid", func(*Config) {}, ""},
		{"metrics on another address", func(c *Config) { c.MetricsAddr = "10.0.0.2:8181" }, ""},
		{"metrics on the listen address", func(c *Config) { c.MetricsAddr = "10.0.0.1:8181" }, "overlaps --listen-addr"},
		{"metrics on every address, listen port", func(c *Config) { c.MetricsAddr = "0.0.0.0:8181" }, "overlaps --listen-addr"},
		{"metrics on an empty host, listen port", func(c *Config) { c.MetricsAddr = ":8181" }, "overlaps --listen-addr"},
		{"listen on every address, metrics port", func(c *Config) { c.ListenAddr = ":9181" }, "overlaps --listen-addr"},
		{"metrics not host:port", func(c *Config) { c.MetricsAddr = "localhost" }, "--metrics-addr"},
		{"listen address neither given nor discovered", func(c *Config) { c.ListenAddr = "" }, "--listen-addr is empty"},
		{"no node name", func(c *Config) { c.NodeName = "" }, "--node-name is required"},
		{"no pod wait", func(c *Config) { c.PodWait = 0 }, "--pod-wait"},
		{"pod wait of 5s", func(c *Config) { c.PodWait = 5 * time.Second }, ""},
		{"pod wait over 5s", func(c *Config) { c.PodWait = 6 * time.Second }, "--pod-wait"},
		{"session of 20m", func(c *Config) { c.SessionDuration = 20 * time.Minute }, ""},
		{"session under 20m", func(c *Config) { c.SessionDuration = 19 * time.Minute }, "--session-duration"},
		{"session over 12h", func(c *Config) { c.SessionDuration = 13 * time.Hour }, "--session-duration"},
		{"default role not a role ARN", func(c *Config) { c.Role.DefaultRole = "arn:aws:s3:::bucket" }, "default role"},
		{"metadata address without a port", func(c *Config) { c.MetadataAddr = "169.254.169.254" }, "--metadata-addr"},
		{"a bad interface pattern without --iptables is unused", func(c *Config) { c.HostInterface = "cali+ -j ACCEPT" }, ""},
		{"a bad interface pattern with --iptables", func(c *Config) { c.IPTables, c.HostInterface = true, "cali+ -j ACCEPT" }, "host interface"},
		{"every interface with --iptables", func(c *Config) { c.IPTables, c.HostInterface = true, "" }, ""},
		{"a Calico pattern with --iptables", func(c *Config) { c.IPTables, c.HostInterface = true, "cali+" }, ""},
		{"listening everywhere without --iptables", func(c *Config) { c.ListenAddr = "0.0.0.0:8181" }, ""},
		{"listening everywhere with --iptables", func(c *Config) { c.IPTables, c.ListenAddr = true, "0.0.0.0:8181" }, "DNAT needs a concrete IPv4"},
		{"an IPv6 metadata address with --iptables", func(c *Config) { c.IPTables, c.MetadataAddr = true, "[fd00:ec2::254]:80" }, "want IPv4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// hostAddr is a HostAddr answering ip, or err; it counts its calls.
type hostAddr struct {
	ip    string
	err   error
	calls int
}

func (h *hostAddr) DefaultRouteIPv4() (netip.Addr, error) {
	h.calls++
	if h.err != nil {
		return netip.Addr{}, h.err
	}
	return netip.MustParseAddr(h.ip), nil
}

func TestDiscover(t *testing.T) {
	noRoute := errors.New("no IPv4 default route with an address; set --host-ip")
	tests := []struct {
		name               string
		hostIP, listenAddr string
		node               hostAddr
		wantHostIP         string
		wantListen         string
		wantAsked          bool
		wantErr            string
	}{
		{name: "listen address given", listenAddr: "10.0.0.9:8181", node: hostAddr{err: noRoute}, wantListen: "10.0.0.9:8181"},
		{name: "host IP given", hostIP: "10.0.0.7", node: hostAddr{err: noRoute}, wantHostIP: "10.0.0.7", wantListen: "10.0.0.7:8181"},
		{name: "host IP from the default route", node: hostAddr{ip: "10.0.0.8"}, wantHostIP: "10.0.0.8", wantListen: "10.0.0.8:8181", wantAsked: true},
		{name: "no default route", node: hostAddr{err: noRoute}, wantAsked: true, wantErr: "set --host-ip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			c.HostIP, c.ListenAddr = tt.hostIP, tt.listenAddr
			err := c.Discover(&tt.node)
			if (tt.node.calls > 0) != tt.wantAsked {
				t.Errorf("asked the node %d times, want asked=%v", tt.node.calls, tt.wantAsked)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Discover = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || c.HostIP != tt.wantHostIP || c.ListenAddr != tt.wantListen {
				t.Fatalf("Discover = %v: host IP %q, listen %q; want %q, %q", err, c.HostIP, c.ListenAddr, tt.wantHostIP, tt.wantListen)
			}
		})
	}
}

type noSTS struct{}

func (noSTS) AssumeRole(context.Context, *sts.AssumeRoleInput, ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	return nil, errors.New("not in this test")
}

// TestSessionDurationBoundsMatchCreds: Validate refuses exactly the
// session durations the credential cache would, so a bad flag is always a
// command-line error and never a start-up failure.
func TestSessionDurationBoundsMatchCreds(t *testing.T) {
	for _, d := range []time.Duration{
		time.Minute, minSessionDuration - time.Second, minSessionDuration, time.Hour,
		maxSessionDuration, maxSessionDuration + time.Second, 24 * time.Hour,
	} {
		c := validConfig()
		c.SessionDuration = d
		validErr := c.Validate()
		_, credsErr := creds.New(creds.Config{SessionDuration: d}, noSTS{}, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		if (validErr == nil) != (credsErr == nil) {
			t.Errorf("session duration %v: Validate says %v, creds.New says %v", d, validErr, credsErr)
		}
	}
}
