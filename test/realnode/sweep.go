package realnode

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodekit/nodekit/test/sandbox"
)

// cgroupRoot holds one directory per cgroup v1 hierarchy (and the empty
// cgroup2 one); the kubelet's cgroupfs driver makes kubepods in each.
const cgroupRoot = "/sys/fs/cgroup"

// sweep removes what a node leaves on the machine, whether it was closed or
// killed: the containers' processes, every process in the node's
// namespaces (daemons, shims, hostNetwork containers), the mounts under
// Dir, the kubepods cgroups and the namespaces. It is idempotent. Dir goes
// last, after the host state recorded in it is restored (removeDir).
func sweep(ctx context.Context, logger *slog.Logger) error {
	var errs []error
	killed := killCgroups()
	for _, ns := range []string{NodeNamespace, EC2Namespace} {
		if err := sandbox.RemoveNamespace(ctx, ns); err != nil {
			errs = append(errs, err)
		}
	}
	// Shims outlive containerd (they are reparented to PID 1); should their
	// namespace be gone already (a sweep interrupted half-way), their
	// command line still names Dir.
	killed = append(killed, killShims()...)
	if err := waitGone(killed, 10*time.Second); err != nil {
		errs = append(errs, err)
	}
	if err := unmountBelow(Dir); err != nil {
		errs = append(errs, err)
	}
	if err := removeCgroups(10 * time.Second); err != nil {
		errs = append(errs, err)
	}
	if len(killed) > 0 {
		logger.Debug("killed container processes", "count", len(killed))
	}
	return errors.Join(errs...)
}

// kubepodsDirs lists every cgroup directory under kubepods in every
// hierarchy, deepest first.
func kubepodsDirs() []string {
	var dirs []string
	hierarchies, _ := os.ReadDir(cgroupRoot)
	for _, h := range hierarchies {
		top := filepath.Join(cgroupRoot, h.Name(), "kubepods")
		_ = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return dirs
}

// killCgroups SIGKILLs every process in a kubepods cgroup and returns them.
func killCgroups() []int {
	seen := map[int]bool{}
	var pids []int
	for _, dir := range kubepodsDirs() {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil || seen[pid] {
				continue
			}
			seen[pid] = true
			pids = append(pids, pid)
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
	return pids
}

// killShims SIGKILLs every containerd shim serving a containerd under Dir.
func killShims() []int {
	var pids []int
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "containerd-shim-runc-v2" || !strings.Contains(string(cmdline), Dir+"/") {
			continue
		}
		if unix.Kill(pid, unix.SIGKILL) == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func waitGone(pids []int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var left []int
		for _, pid := range pids {
			if unix.Kill(pid, 0) == nil {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still exist %v after SIGKILL", left, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// removeCgroups removes the kubepods cgroups, retrying while the kernel
// finishes with killed processes.
func removeCgroups(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var errs []error
		for _, dir := range kubepodsDirs() {
			if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("removing cgroup %s: %w", dir, err))
			}
		}
		if len(errs) == 0 || time.Now().After(deadline) {
			return errors.Join(errs...)
		}
		killCgroups()
		time.Sleep(100 * time.Millisecond)
	}
}

// mountsBelow lists the mount points at or below dir, deepest first.
func mountsBelow(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
	}
	defer f.Close()
	var mps []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			mps = append(mps, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
	}
	slices.SortStableFunc(mps, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return mps, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountBelow lazily unmounts everything at or below dir, deepest first:
// container root filesystems, the kubelet's bind mount of its root
// directory onto itself, volumes, pod network namespaces.
func unmountBelow(dir string) error {
	for pass := 0; pass < 5; pass++ {
		mps, err := mountsBelow(dir)
		if err != nil {
			return err
		}
		if len(mps) == 0 {
			return nil
		}
		for _, mp := range mps {
			_ = unix.Unmount(mp, unix.MNT_DETACH)
		}
	}
	mps, err := mountsBelow(dir)
	if err == nil && len(mps) > 0 {
		err = fmt.Errorf("mounts below %s remain after unmounting: %v", dir, mps)
	}
	return err
}

// removeAllUnmounted removes dir unless something is still mounted below
// it: a container's bind mount of the host's / would otherwise take the
// host's files with it.
func removeAllUnmounted(dir string) error {
	mps, err := mountsBelow(dir)
	if err != nil {
		return err
	}
	if len(mps) > 0 {
		return fmt.Errorf("not removing %s: mounts remain below it: %v", dir, mps)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	return nil
}
