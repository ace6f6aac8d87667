package sandbox

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultStateDir holds one lock file per live sandbox.
const DefaultStateDir = "/run/nodekit-sandbox"

// namePattern matches the namespaces a sandbox creates; the submatch is the
// sandbox id.
var namePattern = regexp.MustCompile(`^nk-([0-9a-f]{8})-(?:node|pod[0-9]+)$`)

// state is what a sandbox records about itself; the lock on the file, not its
// contents, says whether the owner is alive. PID is for humans.
type state struct {
	ID      string    `json:"id"`
	PID     int       `json:"pid"`
	Dir     string    `json:"dir,omitempty"`
	Created time.Time `json:"created"`
}

func statePath(dir, id string) string { return filepath.Join(dir, id+".json") }

// lockState creates the state file for id already locked: it is written and
// flocked under a temporary name and then linked to its real name, so no other process can
// ever see it unlocked while its owner lives. The returned file holds the
// lock until closed (the kernel drops it when the process dies, even on
// SIGKILL).
func lockState(dir string, st state) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating sandbox state dir %s: %w", dir, err)
	}
	tmp := filepath.Join(dir, "."+st.ID+".tmp")
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating sandbox state file %s: %w", tmp, err)
	}
	fail := func(err error) (*os.File, error) {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fail(fmt.Errorf("locking sandbox state file %s: %w", tmp, err))
	}
	if err := json.NewEncoder(f).Encode(st); err != nil {
		return fail(fmt.Errorf("writing sandbox state file %s: %w", tmp, err))
	}
	// Link, not rename: it keeps the locked inode and, unlike rename, never
	// replaces a live sandbox's file should two ids ever collide.
	if err := os.Link(tmp, statePath(dir, st.ID)); err != nil {
		return fail(fmt.Errorf("publishing sandbox state file for %s: %w", st.ID, err))
	}
	os.Remove(tmp)
	return f, nil
}

// claimStale reports whether the sandbox id is dead and, if so, returns a
// release func that must be called after cleaning it up (it removes the state
// file and drops the lock). A missing state file means dead: a live sandbox
// publishes its file before creating any namespace.
func claimStale(dir, id string) (dead bool, st state, release func(), err error) {
	path := statePath(dir, id)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return true, state{ID: id}, func() {}, nil
	}
	if err != nil {
		return false, st, nil, fmt.Errorf("opening sandbox state file %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return false, st, nil, nil
		}
		return false, st, nil, fmt.Errorf("locking sandbox state file %s: %w", path, err)
	}
	// A broken file (a crash mid-write cannot publish one, but someone may
	// have edited it) still names a dead sandbox.
	_ = json.NewDecoder(f).Decode(&st)
	st.ID = id
	return true, st, func() {
		os.Remove(path)
		f.Close()
	}, nil
}

// CleanStale removes what sandboxes of dead processes left behind: their
// namespaces (after killing the processes inside), temporary directories and
// state files. New calls it; `make demo` or a CI step may call it directly.
// Live sandboxes, in this process or others, are left alone.
func CleanStale(ctx context.Context, stateDir string, logger *slog.Logger) error {
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	nsByID := map[string][]string{}
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("listing %s: %w", netnsDir, err)
	}
	for _, e := range entries {
		if m := namePattern.FindStringSubmatch(e.Name()); m != nil {
			nsByID[m[1]] = append(nsByID[m[1]], e.Name())
		}
	}
	files, err := os.ReadDir(stateDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("listing %s: %w", stateDir, err)
	}
	for _, e := range files {
		if strings.HasPrefix(e.Name(), ".") && strings.HasSuffix(e.Name(), ".tmp") {
			removeUnlocked(filepath.Join(stateDir, e.Name()))
			continue
		}
		if id, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			if _, seen := nsByID[id]; !seen {
				nsByID[id] = nil
			}
		}
	}

	var errs []error
	for id, names := range nsByID {
		dead, st, release, err := claimStale(stateDir, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !dead {
			continue
		}
		logger.Info("removing stale sandbox", "id", id, "pid", st.PID, "namespaces", names)
		// Pods first: deleting them removes their veths from the node.
		isNode := func(name string) int {
			if strings.HasSuffix(name, "-node") {
				return 1
			}
			return 0
		}
		slices.SortFunc(names, func(a, b string) int { return cmp.Compare(isNode(a), isNode(b)) })
		for _, name := range names {
			if err := killNamespaceProcs(filepath.Join(netnsDir, name)); err != nil {
				errs = append(errs, err)
			}
			if err := deleteNamespace(ctx, name); err != nil {
				errs = append(errs, err)
			}
		}
		// Only ever remove a directory this package named.
		if st.Dir != "" && strings.HasPrefix(filepath.Base(st.Dir), "nk-"+id+"-") {
			if err := os.RemoveAll(st.Dir); err != nil {
				errs = append(errs, fmt.Errorf("removing temp dir %s: %w", st.Dir, err))
			}
		}
		// Even if something failed: leftover namespaces without a state file
		// count as dead, so the next run retries them.
		release()
	}
	return errors.Join(errs...)
}

// removeUnlocked removes a state file left half-made by a process that died
// between creating and publishing it. A file is only ever unlocked for the
// instant between its creation and its flock, so one that is a minute old and
// unlocked is abandoned.
func removeUnlocked(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || time.Since(fi.ModTime()) < time.Minute {
		return
	}
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
		os.Remove(path)
	}
}
