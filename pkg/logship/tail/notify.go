package tail

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/fsnotify/fsnotify"
)

// Notifier wakes quiet Followers when something happens in their file's
// directory: a write, a rotation, a new file. A woken Follower reads at
// once, and a watched one is polled only now and then, as a safety net
// for missed events (an inotify queue overflow). Without it every quiet
// file on the node is polled at least once a second.
//
// Only quiet files are watched: with a watch, every write a container
// makes queues an event (about 3 µs per write between the writer and
// logship, measured), which a busy file, read in large blocks anyway,
// does not need.
type Notifier struct {
	w      *fsnotify.Watcher
	logger *slog.Logger

	mu   sync.Mutex
	dirs map[string]map[*Follower]struct{}
}

// NewNotifier returns a Notifier; Run must run for it to wake anyone.
func NewNotifier(logger *slog.Logger) (*Notifier, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	return &Notifier{w: w, logger: logger, dirs: map[string]map[*Follower]struct{}{}}, nil
}

// Attach lets fl be woken by n while it is quiet, until the returned
// detach is called. fl must not be in Next when Attach or detach is called.
func (n *Notifier) Attach(fl *Follower) (detach func()) {
	fl.notifier = n
	return func() {
		n.unwatch(fl)
		fl.notifier = nil
	}
}

// watch starts waking fl on changes in its file's directory. If the
// directory cannot be watched, fl keeps polling at the unwatched rate.
func (n *Notifier) watch(fl *Follower) {
	dir := filepath.Dir(fl.path)
	n.mu.Lock()
	defer n.mu.Unlock()
	set := n.dirs[dir]
	if set == nil {
		if err := n.w.Add(dir); err != nil {
			n.logger.Debug("cannot watch a log directory; its file is polled instead", "dir", dir, "err", err)
			return
		}
		set = map[*Follower]struct{}{}
		n.dirs[dir] = set
	}
	set[fl] = struct{}{}
	fl.watched.Store(true)
}

// unwatch stops waking fl, and drops the directory's watch if fl was the
// last Follower in it.
func (n *Notifier) unwatch(fl *Follower) {
	if !fl.watched.Load() {
		return
	}
	fl.watched.Store(false)
	dir := filepath.Dir(fl.path)
	n.mu.Lock()
	defer n.mu.Unlock()
	set := n.dirs[dir]
	delete(set, fl)
	if len(set) == 0 && set != nil {
		delete(n.dirs, dir)
		// The directory may be gone already (a deleted pod).
		_ = n.w.Remove(dir)
	}
}

// Run wakes Followers on events until ctx ends, then releases the watches.
func (n *Notifier) Run(ctx context.Context) error {
	defer n.w.Close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-n.w.Events:
			if !ok {
				return errors.New("fsnotify event channel closed")
			}
			n.wake(filepath.Dir(ev.Name))
		case err, ok := <-n.w.Errors:
			if !ok {
				return errors.New("fsnotify error channel closed")
			}
			// Events were lost (a queue overflow): wake everyone, who
			// will look for themselves.
			n.logger.Warn("file events lost; checking every file", "err", err)
			n.wakeAll()
		}
	}
}

func (n *Notifier) wake(dir string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for fl := range n.dirs[dir] {
		fl.Wake()
	}
}

func (n *Notifier) wakeAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, set := range n.dirs {
		for fl := range set {
			fl.Wake()
		}
	}
}
