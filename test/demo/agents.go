package main

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

	"github.com/nodekit/nodekit/test/sandbox"
)

// agentProc is one nodekit agent running as a process in the node
// namespace, its output in a log file under the demo's work dir.
type agentProc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	done    chan struct{} // closed when the process has been reaped
	err     error         // Wait's result, valid after done
}

// startAgent runs bin with args and env inside the node namespace. The
// process is not tied to ctx: stop ends it gracefully (SIGTERM first), and
// the sandbox kills whatever is left in the namespace on Close.
func startAgent(node *sandbox.Node, name, bin string, args, env []string, logDir string, tee io.Writer) (*agentProc, error) {
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating log file for %s: %w", name, err)
	}
	cmd := node.Command(context.Background(), bin, args...)
	cmd.Env = env
	var w io.Writer = f
	if tee != nil {
		w = io.MultiWriter(f, tee)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	a := &agentProc{name: name, cmd: cmd, logPath: logPath, logFile: f, done: make(chan struct{})}
	go func() {
		a.err = cmd.Wait()
		f.Close()
		close(a.done)
	}()
	return a, nil
}

// exited reports whether the process has ended, and how.
func (a *agentProc) exited() (bool, error) {
	select {
	case <-a.done:
		return true, a.err
	default:
		return false, nil
	}
}

// waitHTTP waits until url answers 200 from inside the node, the process
// exits, or ctx ends. A bounded poll on a real external condition: the agent
// becoming ready.
func (a *agentProc) waitHTTP(ctx context.Context, hc *http.Client, url string) error {
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
		case <-a.done:
			return fmt.Errorf("%s exited (%v) before %s answered; last lines of its log:\n%s", a.name, a.err, url, a.tail(12))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s (last answer: %s): %w", a.name, url, last, context.Cause(ctx))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM, waits up to grace for a clean exit, then kills.
func (a *agentProc) stop(grace time.Duration) error {
	if done, _ := a.exited(); done {
		return nil
	}
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signalling %s: %w", a.name, err)
	}
	select {
	case <-a.done:
		return nil
	case <-time.After(grace):
	}
	if err := a.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing %s: %w", a.name, err)
	}
	<-a.done
	return fmt.Errorf("%s did not stop within %v of SIGTERM; killed", a.name, grace)
}

// tail returns the last n lines of the agent's log.
func (a *agentProc) tail(n int) string {
	b, err := os.ReadFile(a.logPath)
	if err != nil {
		return "(log unreadable: " + err.Error() + ")"
	}
	return lastLines(string(b), n)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
