package intercept

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"time"
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
