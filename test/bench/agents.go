package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// namespace is the part of a sandbox namespace the harness uses to run
// agents: test/sandbox's Node and Pod satisfy it.
type namespace interface {
	Command(ctx context.Context, name string, args ...string) *exec.Cmd
	HTTPClient() *http.Client
}

// agentProc is an agent process the harness started and must stop.
type agentProc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error // valid after done is closed
}

// startAgent runs bin in ns with args and env; its output goes to a file in
// dir, shown when something fails.
func startAgent(ns namespace, dir, name, bin string, args, env []string) (*agentProc, error) {
	return startAgentFiles(ns, dir, name, bin, args, env)
}

// startAgentFiles is startAgent with extra open files passed from fd 3 on.
func startAgentFiles(ns namespace, dir, name, bin string, args, env []string, files ...*os.File) (*agentProc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating log file of %s: %w", name, err)
	}
	// The process is stopped by stop(), not by a context: a cancelled
	// bench must still SIGTERM it and wait.
	cmd := ns.Command(context.Background(), bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.ExtraFiles = files
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &agentProc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *agentProc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *agentProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// logTail is the end of the process's output, for error messages.
func (p *agentProc) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	return tailString(string(b), 3000)
}

// stop sends SIGTERM, then SIGKILL after a grace period, and reaps.
func (p *agentProc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitReady polls url (an agent's /readyz) until it answers 200. This is a
// bounded poll on a real external condition, a process becoming ready;
// the agent's exit ends it early.
func waitReady(ctx context.Context, hc *http.Client, url string, p *agentProc, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, body)
		} else {
			last = err.Error()
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready (%v):\n%s", p.name, p.err, p.logTail())
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("%s not ready at %s within %s (last answer: %s):\n%s", p.name, url, limit, last, p.logTail()), context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// baseEnv is the environment every agent gets besides AWS settings: no
// proxy variables (a proxy would be outside the sandbox).
func baseEnv(home string) []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
}

// fetchProfiles saves a 10 s CPU profile of an agent serving pprof at base,
// then a heap profile, into dir as <name>.cpu.pprof and <name>.heap.pprof.
// It waits for the pprof endpoint to come up (bounded by ctx).
func fetchProfiles(ctx context.Context, hc *http.Client, base, dir, name string, logger *slog.Logger) {
	hc = &http.Client{Transport: hc.Transport, Timeout: time.Minute}
	get := func(path, file string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", path, resp.Status)
		}
		f, err := os.Create(filepath.Join(dir, file))
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, resp.Body); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		logger.Warn("profiles", "err", err)
		return
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		// A bounded poll on the agent's ops server coming up.
		err := get("/debug/pprof/profile?seconds=10", name+".cpu.pprof")
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			logger.Warn("no CPU profile", "agent", name, "err", err)
			return
		case <-tick.C:
		}
	}
	if err := get("/debug/pprof/heap", name+".heap.pprof"); err != nil {
		logger.Warn("no heap profile", "agent", name, "err", err)
	}
	logger.Info("saved profiles", "agent", name, "dir", dir)
}
