// Package agentproc runs a nodekit agent (or any server) as a process
// inside a test namespace, for the benchmarks and the demo: its output goes
// to a log file, WaitReady waits for its readiness endpoint, Stop ends it
// with SIGTERM and then SIGKILL, and Tail shows the end of its log when
// something fails.
package agentproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Namespace is where a process runs: test/sandbox's Node and Pod are
// namespaces; Root is this machine's own.
type Namespace interface {
	Command(ctx context.Context, name string, args ...string) *exec.Cmd
}

// Root runs processes in the test's own namespaces.
type Root struct{}

// Command implements Namespace.
func (Root) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}

// Spec describes a process to start.
type Spec struct {
	// Name names the process in messages and its log file, <LogDir>/<Name>.log.
	Name   string
	Bin    string
	Args   []string
	Env    []string
	LogDir string
	// Tee, if set, also receives the process's output.
	Tee io.Writer
	// ExtraFiles are passed to the process from fd 3 on.
	ExtraFiles []*os.File
}

// Proc is a started process. Stop it: it is not tied to a context, so a
// cancelled run still ends it gracefully.
type Proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has been reaped
	err     error         // Wait's result, valid after done
}

// Start runs s in ns.
func Start(ns Namespace, s Spec) (*Proc, error) {
	logPath := filepath.Join(s.LogDir, s.Name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating log file of %s: %w", s.Name, err)
	}
	cmd := ns.Command(context.Background(), s.Bin, s.Args...)
	cmd.Env = s.Env
	var w io.Writer = f
	if s.Tee != nil {
		w = io.MultiWriter(f, s.Tee)
	}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.ExtraFiles = s.ExtraFiles
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", s.Name, err)
	}
	p := &Proc{name: s.Name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Name is the process's name.
func (p *Proc) Name() string { return p.name }

// Pid is the process's ID (in the root PID namespace), for /proc figures.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// LogPath is the file its output goes to.
func (p *Proc) LogPath() string { return p.logPath }

// Done is closed once the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended, and how.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// WaitReady waits until url (the process's readiness endpoint, reached
// with hc) answers 200, the process exits, or ctx ends. It polls: a
// bounded poll on a real external condition, a process becoming ready.
func (p *Proc) WaitReady(ctx context.Context, hc *http.Client, url string) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("request for %s: %w", url, err)
		}
		resp, err := hc.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%v) before %s answered; last lines of its log:\n%s", p.name, p.err, url, p.Tail(20))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s (last answer: %s); last lines of its log:\n%s: %w", p.name, url, last, p.Tail(20), context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// Stop sends SIGTERM, waits up to grace for the process to exit, then
// kills it; it reports a process that had to be killed.
func (p *Proc) Stop(grace time.Duration) error {
	if done, _ := p.Exited(); done {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signalling %s: %w", p.name, err)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing %s: %w", p.name, err)
	}
	<-p.done
	return fmt.Errorf("%s did not stop within %v of SIGTERM; killed", p.name, grace)
}

// Tail returns the last n lines of the process's log.
func (p *Proc) Tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(log unreadable: " + err.Error() + ")"
	}
	return LastLines(string(b), n)
}

// LastLines returns the last n lines of s.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
