package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	workDirPrefix = "nodekit-demo-"
	pidFile       = "demo.pid"
	// staleGrace protects a work dir another run has just created and not
	// yet written its pid file into.
	staleGrace = time.Minute
)

// removeStaleWorkDirs removes the work dirs of demo runs that died without
// tearing down (SIGKILL, a crash): those whose pid file names a process that
// no longer exists. The sandboxes of such runs are removed by the test bed
// itself (sandbox.CleanStale) when the next one starts. It returns the dirs
// removed.
func removeStaleWorkDirs(tmp string, now time.Time) ([]string, error) {
	dirs, err := filepath.Glob(filepath.Join(tmp, workDirPrefix+"*"))
	if err != nil {
		return nil, fmt.Errorf("listing old work dirs: %w", err)
	}
	var removed []string
	var errs []error
	for _, dir := range dirs {
		if !staleWorkDir(dir, now) {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("removing stale work dir %s: %w", dir, err))
			continue
		}
		removed = append(removed, dir)
	}
	return removed, errors.Join(errs...)
}

func staleWorkDir(dir string, now time.Time) bool {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() || now.Sub(fi.ModTime()) < staleGrace {
		return false
	}
	b, err := os.ReadFile(filepath.Join(dir, pidFile))
	if err != nil {
		// No pid file a minute after creation: its run died at once.
		return errors.Is(err, os.ErrNotExist)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return true
	}
	// Signal 0 checks existence; EPERM still means the process exists.
	err = syscall.Kill(pid, 0)
	return errors.Is(err, syscall.ESRCH)
}

// writePidFile marks dir as this run's.
func writePidFile(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, pidFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing pid file in %s: %w", dir, err)
	}
	return nil
}
