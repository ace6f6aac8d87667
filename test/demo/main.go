// Command demo is `make demo`: a whole Kubernetes node on one machine, with
// nodekit's three agents doing their jobs in front of a newcomer.
//
// It brings up the test bed (test/testbed: a sandbox node network namespace,
// a real kube-apiserver and etcd inside it, the AWS emulator as IMDS, STS and
// CloudWatch Logs), starts metaproxy, logship and nodeexp from this checkout's
// bin/ inside the node, adds pods that ask for AWS credentials with the AWS
// CLI and the Go SDK and write container logs, reads the shipped records back
// and scrapes the metrics, narrating each step. Then it stays up with
// instructions until Ctrl-C, or, with DEMO_ONESHOT=1, tears down and exits.
//
// Everything lives in network namespaces the demo creates and temporary
// directories it removes: the root namespace's iptables rules and routes are
// never touched, and an interrupt at any point (SIGINT, SIGTERM) kills every
// process, removes every namespace and every temporary directory.
//
// Usage (as root):
//
//	demo [--bin DIR]        DIR holds metaproxy, logship, nodeexp (default $NODEKIT_BIN or ./bin)
//	DEMO_ONESHOT=1 demo     run once, tear down, exit 0 when every step worked
//	demo --real-node        the same story on a real kubelet (make demo-realnode)
//
// The same binary, run as `demo sdk-credentials`, is the application in a
// pod that resolves credentials through the AWS SDK for Go's default chain.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == sdkCredentialsCmd {
		os.Exit(sdkCredentials(os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the demo; it returns the exit code. Signals cancel the demo's
// context and keep being caught until teardown is over, so a second Ctrl-C
// cannot leave namespaces or processes behind.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binDir := fs.String("bin", defaultBinDir(), "directory holding the metaproxy, logship and nodeexp binaries (make build writes bin/)")
	oneshot := fs.Bool("oneshot", os.Getenv("DEMO_ONESHOT") == "1", "tear down and exit after one pass instead of staying up (default $DEMO_ONESHOT=1)")
	verbose := fs.Bool("v", false, "also copy the components' logs to stderr")
	realNode := fs.Bool("real-node", os.Getenv("DEMO_REAL_NODE") == "1", "run the story on a real kubelet and containerd (test/realnode), nodekit installed from `make image` as README.md says; run from the repository root (make demo-realnode; default $DEMO_REAL_NODE=1)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "demo: unexpected arguments %q\n", fs.Args())
		return 2
	}

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	stopSignals := make(chan struct{})
	defer close(stopSignals)
	out := newNarrator(stdout)
	go func() {
		for {
			select {
			case s := <-sigs:
				out.Printf("\n%s received: stopping and cleaning up (this takes a few seconds; nothing is left behind)\n", s)
				cancel(errInterrupted)
			case <-stopSignals:
				return
			}
		}
	}()

	if *realNode {
		repo, err := os.Getwd()
		if err != nil {
			fmt.Fprintln(stderr, "demo:", err)
			return 1
		}
		if os.Geteuid() != 0 {
			fmt.Fprintln(stderr, "demo: the real node needs root (network namespaces, cgroups, mounts)")
			return 1
		}
		rd := &realNodeDemo{out: out, repo: repo, oneshot: *oneshot, verbose: *verbose}
		return rd.Run(ctx)
	}
	d := &demo{
		out:     out,
		binDir:  *binDir,
		oneshot: *oneshot,
		verbose: *verbose,
		stderr:  stderr,
	}
	return d.Run(ctx)
}

// errInterrupted is the cause of the demo's context when a signal arrived.
var errInterrupted = errors.New("interrupted")

func defaultBinDir() string {
	if dir := os.Getenv("NODEKIT_BIN"); dir != "" {
		return dir
	}
	return "bin"
}
