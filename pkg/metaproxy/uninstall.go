package metaproxy

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/nodekit/nodekit/pkg/agent"
	"github.com/nodekit/nodekit/pkg/metaproxy/intercept"
)

// Uninstall is `metaproxy uninstall [--host-interface ...]`: it removes
// every rule and chain Config.IPTables installs, from iptables and, where
// the node has it, ip6tables. It accepts --host-interface for kube2iam-style
// scripts but does not need it: every jump to metaproxy's chain goes,
// whatever its interface. Usage errors are *agent.UsageError.
func Uninstall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return uninstall(ctx, args, stdout, stderr, intercept.Open)
}

// opener opens iptables and ip6tables (intercept.Open; a fake in tests).
type opener func(ctx context.Context, logger *slog.Logger) (ipt, ip6 intercept.IPTables, err error)

func uninstall(ctx context.Context, args []string, stdout, stderr io.Writer, open opener) error {
	fs := newUninstallFlagSet(new(string))
	if err := agent.ParseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &agent.UsageError{Err: fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	ipt, ip6, err := open(ctx, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return err
	}
	if err := intercept.Uninstall(ipt, ip6); err != nil {
		return fmt.Errorf("removing the metadata interception rules: %w", err)
	}
	tables := "iptables nat PREROUTING and filter FORWARD"
	if ip6 != nil {
		tables += ", ip6tables filter FORWARD"
	}
	fmt.Fprintf(stdout, "removed chain %s and the jumps to it (%s)\n", intercept.Chain, tables)
	return nil
}

func newUninstallFlagSet(iface *string) *flag.FlagSet {
	fs := flag.NewFlagSet("metaproxy uninstall", flag.ContinueOnError)
	fs.StringVar(iface, "host-interface", "", "accepted for compatibility; every jump to metaproxy's chain is removed whatever its interface")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: metaproxy uninstall [--host-interface=...]\n\n"+
			"Removes the chain %s and every jump to it that metaproxy --iptables installed.\n\nFlags:\n", intercept.Chain)
		fs.PrintDefaults()
	}
	return fs
}
