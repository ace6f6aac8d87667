// Package podnames tells nodeexp's pod collector the namespace and name of
// a pod from its UID without asking the API server: the kubelet creates one
// directory per pod sandbox under /var/log/pods, named
// "<namespace>_<pod>_<uid>", before any of the pod's containers start.
//
// Reading the directory instead of running a pod informer keeps client-go
// and the Kubernetes API types out of nodeexp's binary (10 of its 23 MB,
// and 5 MiB of its resident memory). It also gets static pods right: their
// cgroup carries the UID the kubelet computed from the manifest, which the
// log directory carries too, while the API server's mirror pod has another.
package podnames

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Dir indexes a kubelet pod log directory by pod UID. It is safe for
// concurrent use and starts nothing: the directory is listed on the first
// lookup and again only when a lookup misses and the directory may have
// changed since (see ByUID).
type Dir struct {
	path string
	now  func() time.Time

	mu sync.Mutex
	// byUID maps a UID to "namespace" and "pod"; a pod's namespace and
	// name never change, so a hit is always current.
	byUID map[string]name
	// The directory's identity and mtime when it was last listed, and when
	// that listing started; listed is false until the first listing.
	listed    bool
	ino       uint64
	mtime     unix.Timespec
	listStart time.Time
	// err is why the last stat or listing failed (nil when it worked).
	err error
}

type name struct{ namespace, pod string }

// New returns an index of the pod log directory at path (usually
// /var/log/pods). A missing directory is not an error: every lookup misses
// until it appears.
func New(path string) *Dir {
	return &Dir{path: path, now: time.Now, byUID: map[string]name{}}
}

// Path returns the directory the index reads.
func (d *Dir) Path() string { return d.path }

// Check reads the directory once: opening it and reading an entry, which a
// stat(2) does not do. A directory that can be stat'ed but not read (the
// kubelet makes /var/log/pods 0750 root:root, and nodeexp runs as nobody)
// would otherwise leave every pod unnamed without a word.
func (d *Dir) Check() error {
	f, err := os.Open(d.path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); err != nil && err != io.EOF {
		return fmt.Errorf("reading %s: %w", d.path, err)
	}
	return nil
}

// Err returns why the directory could not be read at the last lookup that
// looked at it, or nil.
func (d *Dir) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// mtimeSlack is how long after the directory's last change a listing must
// have started to be sure it saw that change: the kernel stamps directory
// changes with a coarse clock (one tick, at most 10 ms, behind), so a
// directory created just after a listing can carry the same mtime the
// listing recorded. A second is far beyond any tick.
const mtimeSlack = time.Second

// ByUID returns the namespace and name of the pod with this UID, as it
// appears in the pod's cgroup name (dashes, not the systemd driver's
// underscores). On a miss it lists the directory again unless the
// directory is unchanged since a listing that certainly saw its last
// change, so a pod whose directory appears later is found on the next
// lookup, and a pod that has no directory costs one stat(2) per lookup.
func (d *Dir) ByUID(uid string) (namespace, pod string, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n, ok := d.byUID[uid]; ok {
		return n.namespace, n.pod, true
	}
	var st unix.Stat_t
	if err := unix.Stat(d.path, &st); err != nil {
		// Absent (or unreadable): forget what was listed before, so
		// pods of a removed directory are not named from memory.
		if len(d.byUID) > 0 {
			clear(d.byUID)
		}
		d.listed = false
		d.err = &os.PathError{Op: "stat", Path: d.path, Err: err}
		return "", "", false
	}
	if d.listed && st.Ino == d.ino && st.Mtim == d.mtime &&
		d.listStart.Sub(time.Unix(st.Mtim.Unix())) > mtimeSlack {
		return "", "", false
	}
	d.list(st)
	n, ok := d.byUID[uid]
	return n.namespace, n.pod, ok
}

// list rebuilds the index from the directory; st is the directory's
// stat(2) taken just before. Directories of pods that are gone drop out.
func (d *Dir) list(st unix.Stat_t) {
	d.listStart = d.now()
	d.ino, d.mtime = st.Ino, st.Mtim
	clear(d.byUID)
	// os.ReadDir allocates per entry, but listings are rare: one per
	// change of the directory that a lookup noticed.
	entries, err := os.ReadDir(d.path)
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if ns, pod, uid, ok := Parse(e.Name()); ok {
			d.byUID[uid] = name{namespace: ns, pod: pod}
		}
	}
	// A listing that failed half-way is retried on the next miss.
	d.listed = err == nil
	d.err = err
}

// Parse splits a pod log directory name, "<namespace>_<pod>_<uid>", into
// its parts. Namespaces (DNS labels) and pod names (DNS subdomains) never
// contain an underscore, so a name with more or fewer than two is not a
// pod's, nor one whose UID is not hex digits and dashes. The UID is
// returned in lower case, as cgroup names carry it.
func Parse(dir string) (namespace, pod, uid string, ok bool) {
	namespace, rest, _ := strings.Cut(dir, "_")
	pod, uid, _ = strings.Cut(rest, "_")
	if namespace == "" || pod == "" || !isUID(uid) {
		return "", "", "", false
	}
	return namespace, pod, strings.ToLower(uid), true
}

// isUID reports whether s can be the UID in a pod cgroup's name: hex digits
// and dashes (a UUID, or a static pod's 32-digit hash).
func isUID(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F', c == '-':
		default:
			return false
		}
	}
	return true
}
