package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"
)

// RunFunc is a binary's whole program: it parses args, runs until ctx ends,
// and returns an error instead of exiting.
type RunFunc func(ctx context.Context, args []string, stdout io.Writer) error

// UsageError marks errors caused by the command line; Exec returns 2 for them.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Exec runs run with signal handling and maps its result to an exit code:
// 0 on success or --help, 2 for usage errors, 1 otherwise. A nodekit main is
//
//	func main() { os.Exit(agent.Exec(name, run, os.Args[1:], os.Stdout, os.Stderr)) }
//
// so main is the only place a binary exits. SIGINT and SIGTERM cancel the
// context given to run; a second signal kills the process at once.
func Exec(name string, run RunFunc, args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		// Restore default handling so a second signal kills a stuck shutdown.
		stop()
	}()

	err := run(ctx, args, stdout)
	var usage *UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
}

// ParseFlags parses args into fs, sending usage text to stderr-like output
// and wrapping failures as usage errors. Positional arguments are left in
// fs.Args() for the caller to accept or refuse.
func ParseFlags(fs *flag.FlagSet, args []string, output io.Writer) error {
	fs.SetOutput(output)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &UsageError{Err: err}
	}
	return nil
}
