package realnode

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// hostSysctls are the global kernel settings the kubelet rewrites when
// protectKernelDefaults is off (vm.overcommit_memory 0→1, kernel.panic 1→10,
// kernel.panic_on_oops 0→1 on this machine), with the others of its list.
var hostSysctls = []string{
	"vm/overcommit_memory",
	"vm/panic_on_oom",
	"kernel/panic",
	"kernel/panic_on_oops",
	"kernel/keys/root_maxkeys",
	"kernel/keys/root_maxbytes",
}

// hostPaths are the paths outside Dir that the node's components write to
// whatever their configuration says: the kubelet's pod logs and their
// symlinks (the manifest's hostPaths expect them where real nodes have
// them), its device-plugin socket, libcni's result cache, the nodekit
// DaemonSet's own hostPath, mount(8)'s utab after the kubelet's bind mount,
// ctr's fifo directory, and the CNI and kube-proxy defaults in case a
// setting is missed.
var hostPaths = []string{
	"/var/log/pods",
	"/var/log/containers",
	"/var/lib/kubelet",
	"/var/lib/cni",
	"/var/lib/nodekit",
	"/var/lib/kube-proxy",
	"/run/xtables.lock",
	"/run/mount",
	"/run/containerd",
	"/etc/cni",
	"/opt/cni",
}

// hostState is what the node changes outside Dir, recorded before the
// change, so that Close (or the next run, after a SIGKILL) can put it back.
type hostState struct {
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	// Sysctls maps a path under /proc/sys to its value before the node.
	Sysctls map[string]string `json:"sysctls"`
	// RootWasPrivate: "/" was a private mount and the node made it shared
	// (containerd refuses HostToContainer propagation otherwise).
	RootWasPrivate bool       `json:"root_was_private"`
	Paths          []hostPath `json:"paths"`
	// Mounts the node made on host paths (a test's tmpfs), recorded before
	// each is made.
	Mounts []string `json:"mounts,omitempty"`
}

// hostPath is one path of hostPaths as it was: absent, or present with
// these directory entries (only entries added since are removed).
type hostPath struct {
	Path    string   `json:"path"`
	Existed bool     `json:"existed"`
	Entries []string `json:"entries,omitempty"`
}

// recordHost reads the host state the node is about to change.
func recordHost() (*hostState, error) {
	st := &hostState{PID: os.Getpid(), Started: time.Now(), Sysctls: map[string]string{}}
	for _, key := range hostSysctls {
		b, err := os.ReadFile(filepath.Join("/proc/sys", key))
		if err != nil {
			return nil, fmt.Errorf("reading sysctl %s: %w", key, err)
		}
		st.Sysctls[key] = strings.TrimSpace(string(b))
	}
	prop, err := rootPropagation()
	if err != nil {
		return nil, err
	}
	st.RootWasPrivate = prop == "private"
	for _, p := range hostPaths {
		hp := hostPath{Path: p}
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("checking %s: %w", p, err)
		default:
			hp.Existed = true
			if fi.IsDir() {
				entries, err := os.ReadDir(p)
				if err != nil {
					return nil, fmt.Errorf("listing %s: %w", p, err)
				}
				for _, e := range entries {
					hp.Entries = append(hp.Entries, e.Name())
				}
			}
		}
		st.Paths = append(st.Paths, hp)
	}
	return st, nil
}

// restore puts back what st recorded. It is safe to run more than once.
func (st *hostState) restore() error {
	var errs []error
	for _, m := range st.Mounts {
		if err := unmountBelow(m); err != nil {
			errs = append(errs, err)
		}
	}
	for key, want := range st.Sysctls {
		path := filepath.Join("/proc/sys", key)
		b, err := os.ReadFile(path)
		if err == nil && strings.TrimSpace(string(b)) == want {
			continue
		}
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restoring sysctl %s to %s: %w", key, want, err))
		}
	}
	for _, hp := range st.Paths {
		if !hp.Existed {
			if err := removeAllUnmounted(hp.Path); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		entries, err := os.ReadDir(hp.Path)
		if err != nil {
			continue // a file, or gone: nothing of ours inside
		}
		for _, e := range entries {
			if slices.Contains(hp.Entries, e.Name()) {
				continue
			}
			if err := removeAllUnmounted(filepath.Join(hp.Path, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if st.RootWasPrivate {
		if err := unix.Mount("", "/", "", unix.MS_PRIVATE, ""); err != nil {
			errs = append(errs, fmt.Errorf("making / a private mount again: %w", err))
		}
	}
	return errors.Join(errs...)
}

// rootPropagation is "shared", "slave" or "private": how the root mount of
// this mount namespace propagates.
func rootPropagation() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("reading mountinfo: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	prop := ""
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 || fields[4] != "/" {
			continue
		}
		prop = "private" // the last mount on / is the visible one
		for _, opt := range fields[6:] {
			if opt == "-" {
				break
			}
			switch {
			case strings.HasPrefix(opt, "shared:"):
				prop = "shared"
			case strings.HasPrefix(opt, "master:") && prop != "shared":
				prop = "slave"
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("reading mountinfo: %w", err)
	}
	if prop == "" {
		return "", errors.New("no mount on / in /proc/self/mountinfo")
	}
	return prop, nil
}

// saveState writes st to path durably, before anything it records changes.
func saveState(path string, st *hostState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding host state: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("writing host state: %w", err)
	}
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("writing host state %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("publishing host state: %w", err)
	}
	return nil
}

// loadState reads a state file; a missing one is (nil, nil).
func loadState(path string) (*hostState, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading host state: %w", err)
	}
	st := &hostState{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("decoding host state %s: %w", path, err)
	}
	return st, nil
}
