package xtables

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRules answers the save commands from fixed outputs keyed by
// "multi command args".
type fakeRules map[string]string

func (f fakeRules) run(_ context.Context, multi, command string, args ...string) ([]byte, error) {
	key := strings.Join(append([]string{multi, command}, args...), " ")
	out, ok := f[key]
	if !ok {
		return nil, errors.New("exit status 1")
	}
	return []byte(out), nil
}

const (
	nftMangleWithKubelet = "*mangle\n:PREROUTING ACCEPT [0:0]\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n"
	legacyWithCanary     = "*mangle\n:PREROUTING ACCEPT [0:0]\n:KUBE-KUBELET-CANARY - [0:0]\nCOMMIT\n"
	twoRules             = "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j X\n-A PREROUTING -j Y\nCOMMIT\n"
	oneRule              = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n"
	// A chain whose name merely starts like the kubelet's must not count.
	lookalike = "*mangle\n:KUBE-IPTABLES-HINTS - [0:0]\nCOMMIT\n"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		name  string
		rules fakeRules
		want  Mode
	}{
		{"nothing_anywhere_defaults_to_nft", fakeRules{}, NFT},
		{"kubelet_chain_in_nft", fakeRules{"xtables-nft-multi iptables-save -t mangle": nftMangleWithKubelet}, NFT},
		{"kubelet_chain_in_nft_ipv6_only", fakeRules{"xtables-nft-multi ip6tables-save -t mangle": nftMangleWithKubelet}, NFT},
		{"kubelet_chain_in_legacy", fakeRules{"xtables-legacy-multi iptables-save": legacyWithCanary}, Legacy},
		{"kubelet_chain_in_both_prefers_nft", fakeRules{
			"xtables-nft-multi iptables-save -t mangle": nftMangleWithKubelet,
			"xtables-legacy-multi iptables-save":        legacyWithCanary,
		}, NFT},
		{"more_legacy_rules", fakeRules{
			"xtables-legacy-multi iptables-save": twoRules,
			"xtables-nft-multi iptables-save":    oneRule,
		}, Legacy},
		{"more_nft_rules", fakeRules{
			"xtables-legacy-multi iptables-save": oneRule,
			"xtables-nft-multi iptables-save":    twoRules,
		}, NFT},
		{"equal_rule_counts_prefer_nft", fakeRules{
			"xtables-legacy-multi iptables-save": oneRule,
			"xtables-nft-multi iptables-save":    oneRule,
		}, NFT},
		{"lookalike_chain_is_not_the_kubelet", fakeRules{
			"xtables-legacy-multi iptables-save": lookalike,
		}, NFT},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Detect(context.Background(), tc.rules.run); got != tc.want {
				t.Errorf("Detect = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestRelink(t *testing.T) {
	sbin := t.TempDir()
	for _, c := range Commands {
		if err := os.Symlink(filepath.Join(sbin, "iptables-wrapper"), filepath.Join(sbin, c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := Relink(sbin, Legacy); err != nil {
		t.Fatal(err)
	}
	for _, c := range Commands {
		got, err := os.Readlink(filepath.Join(sbin, c))
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(sbin, "xtables-legacy-multi"); got != want {
			t.Errorf("%s -> %s, want %s", c, got, want)
		}
	}
	entries, _ := os.ReadDir(sbin)
	if len(entries) != len(Commands) {
		t.Errorf("Relink left %d entries in %s, want %d (no temporary links)", len(entries), sbin, len(Commands))
	}
}

func TestRelinkFailureNamesTheLink(t *testing.T) {
	err := Relink(filepath.Join(t.TempDir(), "missing"), NFT)
	if err == nil || !strings.Contains(err.Error(), "missing/iptables") {
		t.Fatalf("Relink into a missing directory: err = %v, want one naming the iptables link", err)
	}
	if ReadOnly(err) {
		t.Errorf("ReadOnly(%v) = true for a missing directory", err)
	}
}

func TestIsCommand(t *testing.T) {
	for name, want := range map[string]bool{"iptables": true, "ip6tables-restore": true, "iptables-wrapper": false, "iptables-nft": false, "": false} {
		if got := IsCommand(name); got != want {
			t.Errorf("IsCommand(%q) = %v, want %v", name, got, want)
		}
	}
}
