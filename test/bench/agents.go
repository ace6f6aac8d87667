package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nodekit/nodekit/test/agentproc"
)

// stopGrace is how long an agent gets to exit after SIGTERM.
const stopGrace = 15 * time.Second

// startAgent runs bin in ns with args and env (test/agentproc); its output
// goes to a file in dir, shown when something fails.
func startAgent(ns agentproc.Namespace, dir, name, bin string, args, env []string) (*agentproc.Proc, error) {
	return agentproc.Start(ns, agentproc.Spec{Name: name, Bin: bin, Args: args, Env: env, LogDir: dir})
}

// waitReady waits up to limit for p's url (its /readyz) to answer 200.
func waitReady(ctx context.Context, hc *http.Client, url string, p *agentproc.Proc, limit time.Duration) error {
	ctx, cancel := context.WithTimeoutCause(ctx, limit, fmt.Errorf("not ready within %s", limit))
	defer cancel()
	return p.WaitReady(ctx, hc, url)
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
