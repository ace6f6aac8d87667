package metaproxy

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/nodekit/nodekit/pkg/agent"
	"github.com/nodekit/nodekit/pkg/metaproxy/intercept"
)

// installed returns fakes holding what metaproxy --iptables installs next
// to a rule of someone else's, which must stay.
func installed(t *testing.T, withIPv6 bool) (ipt, ip6 *intercept.Fake) {
	t.Helper()
	ipt = intercept.NewFake()
	ipt.Append("nat", "PREROUTING", "-j", "KUBE-SERVICES")
	var ip6tables intercept.IPTables
	if withIPv6 {
		ip6 = intercept.NewFake()
		ip6tables = ip6
	}
	i, err := intercept.New(intercept.Config{MetadataAddr: "169.254.169.254:80", ListenAddr: "10.0.0.1:8181", HostInterface: "cali+"},
		ipt, ip6tables, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := i.Ensure(); err != nil {
		t.Fatal(err)
	}
	return ipt, ip6
}

func TestUninstall(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		ipv6       bool
		openErr    error
		wantUsage  bool
		wantErr    string
		wantOpened bool
		wantOut    string
	}{
		{name: "iptables and ip6tables", ipv6: true, wantOpened: true, wantOut: "ip6tables filter FORWARD"},
		{name: "a node without ip6tables", wantOpened: true, wantOut: "(iptables nat PREROUTING and filter FORWARD)"},
		{name: "kube2iam's --host-interface", args: []string{"--host-interface", "eni+"}, ipv6: true, wantOpened: true, wantOut: "removed chain NODEKIT-METAPROXY"},
		{name: "no iptables on the node", openErr: errors.New("opening iptables (iptables): exec: not found"), wantOpened: true, wantErr: "opening iptables"},
		{name: "a stray argument", args: []string{"now"}, wantUsage: true, wantErr: "unexpected arguments"},
		{name: "an unknown flag", args: []string{"--all"}, wantUsage: true, wantErr: "-all"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ipt, ip6 := installed(t, tt.ipv6)
			opened := false
			open := func(context.Context, *slog.Logger) (intercept.IPTables, intercept.IPTables, error) {
				opened = true
				if tt.openErr != nil {
					return nil, nil, tt.openErr
				}
				if ip6 == nil {
					return ipt, nil, nil
				}
				return ipt, ip6, nil
			}
			var stdout strings.Builder
			err := uninstall(t.Context(), tt.args, &stdout, io.Discard, open)
			if opened != tt.wantOpened {
				t.Errorf("opened iptables: %v, want %v", opened, tt.wantOpened)
			}
			var usage *agent.UsageError
			if errors.As(err, &usage) != tt.wantUsage {
				t.Errorf("error %v: usage error %v, want %v", err, !tt.wantUsage, tt.wantUsage)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("uninstall = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !strings.Contains(stdout.String(), tt.wantOut) {
				t.Fatalf("uninstall = %v, printed %q; want %q", err, stdout.String(), tt.wantOut)
			}
			left := map[string][]string{
				"nat/PREROUTING": ipt.Rules("nat", "PREROUTING"), "nat/" + intercept.Chain: ipt.Rules("nat", intercept.Chain),
				"filter/FORWARD": ipt.Rules("filter", "FORWARD"), "filter/" + intercept.Chain: ipt.Rules("filter", intercept.Chain),
			}
			if ip6 != nil {
				left["ip6 filter/FORWARD"] = ip6.Rules("filter", "FORWARD")
				left["ip6 filter/"+intercept.Chain] = ip6.Rules("filter", intercept.Chain)
			}
			for where, rules := range left {
				for _, r := range rules {
					if strings.Contains(r, intercept.Chain) || strings.Contains(r, "nodekit") {
						t.Errorf("%s still holds %q", where, r)
					}
				}
			}
			if ok, _ := ipt.ChainExists("nat", intercept.Chain); ok {
				t.Error("nat chain left behind")
			}
			if got := ipt.Rules("nat", "PREROUTING"); len(got) != 1 || got[0] != "-j KUBE-SERVICES" {
				t.Errorf("PREROUTING = %q, want the other rule kept", got)
			}
		})
	}
}

func TestUninstallTwiceSucceeds(t *testing.T) {
	ipt, ip6 := installed(t, true)
	open := func(context.Context, *slog.Logger) (intercept.IPTables, intercept.IPTables, error) {
		return ipt, ip6, nil
	}
	for i := range 2 {
		if err := uninstall(t.Context(), nil, io.Discard, io.Discard, open); err != nil {
			t.Fatalf("uninstall #%d: %v", i+1, err)
		}
	}
}

func TestUninstallHelp(t *testing.T) {
	var out strings.Builder
	err := uninstall(t.Context(), []string{"--help"}, io.Discard, &out, func(context.Context, *slog.Logger) (intercept.IPTables, intercept.IPTables, error) {
		t.Fatal("--help opened iptables")
		return nil, nil, nil
	})
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	if gaps := agent.HelpGaps(newUninstallFlagSet(new(string)), out.String()); len(gaps) > 0 || !strings.Contains(out.String(), "metaproxy uninstall") {
		t.Errorf("help does not explain %v:\n%s", gaps, out.String())
	}
}
