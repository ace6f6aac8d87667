// Command iptables-wrapper stands in for iptables, iptables-save,
// iptables-restore and their ip6tables twins in the image built from Debian
// packages (deploy/image/debianbase): it picks the backend the node uses and
// runs that backend's command (see package xtables). Install it as
// /usr/sbin/iptables-wrapper with those six names linked to it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nodekit/nodekit/deploy/image/xtables"
)

// sbin is where the image keeps iptables (/sbin links to it).
const sbin = "/usr/sbin"

func main() {
	if err := run(os.Args, os.Environ()); err != nil {
		fmt.Fprintf(os.Stderr, "iptables-wrapper: %v\n", err)
		os.Exit(1)
	}
}

// run returns only on failure: on success the process becomes the chosen
// backend's command.
func run(argv, env []string) error {
	command := filepath.Base(argv[0])
	if !xtables.IsCommand(command) {
		return fmt.Errorf("run me as one of %v (a link to me), not as %q", xtables.Commands, command)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	mode := xtables.Detect(ctx, runMulti)
	cancel()
	if err := xtables.Relink(sbin, mode); err != nil && !xtables.ReadOnly(err) {
		// Not fatal: this call still runs the right backend, and so will
		// every later one, each detecting again.
		fmt.Fprintf(os.Stderr, "iptables-wrapper: cannot switch the iptables links (%v); running %s directly\n", err, mode.Multi())
	}
	multi := filepath.Join(sbin, mode.Multi())
	// The multi-call binary picks its command from argv[0].
	return syscall.Exec(multi, append([]string{command}, argv[1:]...), env)
}

func runMulti(ctx context.Context, multi, command string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(sbin, multi), args...)
	cmd.Args[0] = command
	return cmd.Output()
}
