package intercept

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"regexp"
	"time"

	"github.com/coreos/go-iptables/iptables"
)

// An image's iptables is usually iptables-wrapper (kube-proxy's, and
// nodekit's image's): a program that finds out on every call whether the
// node's rules live in nf_tables or in the legacy tables, by listing them,
// and then runs that backend. With a writable root it relinks itself away
// after the first call; under the read-only root the manifest gives
// metaproxy it cannot, so its rule checks every 5 s cost about 12% of a core
// on a real node (BENCHMARKS.md, real node). The backend never changes
// while the node runs, so metaproxy asks once and then calls the backend's
// own command, as the relinked wrapper would.

var versionMode = regexp.MustCompile(`\((nf_tables|legacy)\)`)

// BackendCommand returns the command to run for iptables (or ip6tables):
// "iptables-nft" or "iptables-legacy" when `iptables --version` names the
// mode and that command exists, else the command itself.
func BackendCommand(ctx context.Context, command string) string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, command, "--version").Output()
	if err != nil {
		return command
	}
	m := versionMode.FindSubmatch(out)
	if m == nil {
		return command
	}
	backend := fmt.Sprintf("%s-%s", command, map[string]string{"nf_tables": "nft", "legacy": "legacy"}[string(m[1])])
	if _, err := exec.LookPath(backend); err != nil {
		return command
	}
	return backend
}

// Open opens iptables and, where the node has it, ip6tables, each through
// its backend's own command (BackendCommand). The IPv6 side only rejects
// pods' requests to the IPv6 metadata address, so a node without ip6tables
// gets a nil ip6 and a warning rather than an error.
func Open(ctx context.Context, logger *slog.Logger) (ipt, ip6 IPTables, err error) {
	cmd4 := BackendCommand(ctx, "iptables")
	v4, err := iptables.New(iptables.Path(cmd4))
	if err != nil {
		return nil, nil, fmt.Errorf("opening iptables (%s): %w", cmd4, err)
	}
	cmd6 := BackendCommand(ctx, "ip6tables")
	logger.Debug("iptables commands", "ipv4", cmd4, "ipv6", cmd6)
	v6, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv6), iptables.Path(cmd6))
	if err != nil {
		logger.Warn("ip6tables unavailable: pods' requests to the IPv6 metadata address are not rejected", "err", err)
		return v4, nil, nil
	}
	return v4, v6, nil
}
