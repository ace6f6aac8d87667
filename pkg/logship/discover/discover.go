// Package discover finds the container log files to ship: the kubelet's
// symlinks in --containers-dir, named <pod>_<namespace>_<container>-<id>.log
// and pointing into /var/log/pods/<namespace>_<pod>_<uid>/<container>/N.log.
//
// Everything logship needs to name a stream comes from those paths, so
// shipping never waits on the API server. The directory is watched with
// fsnotify, and rescanned periodically as a safety net for missed events
// (inotify queue overflow, a recreated directory).
package discover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Target is one container's log, as named by its symlink.
type Target struct {
	// Link is the symlink's path; its base name is the target's key.
	Link string
	// Path is where the link points (the kubelet's N.log).
	Path        string
	Namespace   string
	Pod         string
	PodUID      string // from Path; empty when Path is not in kubelet's layout
	Container   string
	ContainerID string
}

// Key identifies a target across restarts.
func (t Target) Key() string { return filepath.Base(t.Link) }

// ParseName splits "<pod>_<namespace>_<container>-<id>.log". Pod and
// namespace names cannot hold "_"; container names cannot either, and the
// container id is the hex after the last "-".
func ParseName(name string) (pod, namespace, container, id string, err error) {
	base, ok := strings.CutSuffix(name, ".log")
	if !ok {
		return "", "", "", "", fmt.Errorf("log link %q does not end in .log", name)
	}
	parts := strings.Split(base, "_")
	if len(parts) != 3 {
		return "", "", "", "", fmt.Errorf("log link %q is not <pod>_<namespace>_<container>-<id>.log", name)
	}
	i := strings.LastIndexByte(parts[2], '-')
	if i <= 0 || i == len(parts[2])-1 || parts[0] == "" || parts[1] == "" {
		return "", "", "", "", fmt.Errorf("log link %q is not <pod>_<namespace>_<container>-<id>.log", name)
	}
	return parts[0], parts[1], parts[2][:i], parts[2][i+1:], nil
}

// podUID reads the uid from /var/log/pods/<namespace>_<pod>_<uid>/<container>/N.log.
func podUID(path, namespace, pod string) string {
	dir := filepath.Base(filepath.Dir(filepath.Dir(path)))
	prefix := namespace + "_" + pod + "_"
	if uid, ok := strings.CutPrefix(dir, prefix); ok {
		return uid
	}
	return ""
}

// Scan reads dir once. Names that do not parse are skipped (returned in
// skipped for logging); dangling links are kept, their file may appear.
func Scan(dir string) (targets map[string]Target, skipped []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("reading containers directory %s: %w", dir, err)
	}
	targets = make(map[string]Target, len(entries))
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".log") {
			continue
		}
		pod, ns, container, id, err := ParseName(name)
		if err != nil {
			skipped = append(skipped, name)
			continue
		}
		link := filepath.Join(dir, name)
		path := link
		if e.Type()&os.ModeSymlink != 0 {
			dest, err := os.Readlink(link)
			if err != nil {
				continue // removed since ReadDir
			}
			if !filepath.IsAbs(dest) {
				dest = filepath.Join(dir, dest)
			}
			path = dest
		}
		targets[name] = Target{
			Link: link, Path: path, Namespace: ns, Pod: pod, PodUID: podUID(path, ns, pod),
			Container: container, ContainerID: id,
		}
	}
	return targets, skipped, nil
}

// Watcher reports the set of targets whenever it may have changed.
type Watcher struct {
	dir    string
	rescan time.Duration
	logger *slog.Logger
}

// NewWatcher watches dir, rescanning every rescan.
func NewWatcher(dir string, rescan time.Duration, logger *slog.Logger) *Watcher {
	return &Watcher{dir: dir, rescan: rescan, logger: logger.With("dir", dir)}
}

// Run calls sync with the full set of targets at start, after changes (a
// burst of events gives one call) and at every rescan, until ctx ends.
// sync runs on Run's goroutine.
func (w *Watcher) Run(ctx context.Context, sync func(map[string]Target)) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("creating fsnotify watcher for %s: %w", w.dir, err)
	}
	defer fw.Close()
	watching := false
	watch := func() {
		if watching {
			return
		}
		if err := fw.Add(w.dir); err != nil {
			w.logger.Warn("cannot watch containers directory yet; relying on rescans", "err", err)
			return
		}
		watching = true
	}
	scan := func() {
		watch()
		targets, skipped, err := Scan(w.dir)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				w.logger.Debug("containers directory missing", "err", err)
				targets = map[string]Target{}
			} else {
				w.logger.Warn("scanning containers directory", "err", err)
				return
			}
		}
		for _, s := range skipped {
			w.logger.Debug("skipping a file not named like a container log", "name", s)
		}
		sync(targets)
	}
	scan()
	ticker := time.NewTicker(w.rescan)
	defer ticker.Stop()
	// Debounce bursts (a node starting many pods) into one scan.
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			scan()
		case ev, ok := <-fw.Events:
			if !ok {
				return errors.New("fsnotify event channel closed")
			}
			if ev.Name == w.dir && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				watching = false
			}
			if debounce == nil {
				debounce = time.After(50 * time.Millisecond)
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return errors.New("fsnotify error channel closed")
			}
			// An overflow means missed events: rescan now.
			w.logger.Warn("fsnotify error; rescanning", "err", err)
			scan()
		case <-debounce:
			debounce = nil
			scan()
		}
	}
}
