package image

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"golang.org/x/sys/unix"
)

// A small container runtime for tests: the unpacked image as the root of a
// private mount namespace, read-only like readOnlyRootFilesystem, host
// files bound in like hostPath volumes, a network namespace joined, the
// capability bounding set cut to what the manifest adds, no_new_privs set
// (allowPrivilegeEscalation: false), then exec. The test binary re-runs
// itself as this runtime (TestMain) in a new mount namespace, so nothing it
// mounts is seen outside.

const sandboxEnv = "NODEKIT_IMAGE_TEST_SANDBOX"

type sandboxSpec struct {
	// Root is the unpacked image.
	Root string
	// NetNS is a network namespace file to join (/run/netns/NAME).
	NetNS    string
	ReadOnly bool
	// Binds are host paths bound at paths inside Root (mount points must
	// exist, as a runtime creates them).
	Binds []bindMount
	// Caps are the capabilities kept (e.g. NET_ADMIN); nil keeps all.
	Caps       []string
	NoNewPrivs bool
	Argv, Env  []string
}

type bindMount struct {
	Src, Dst string
	ReadOnly bool
}

// sandboxCommand returns a command running spec; start it like any other.
func sandboxCommand(t *testing.T, spec sandboxSpec) *exec.Cmd {
	t.Helper()
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), sandboxEnv+"="+string(data))
	// Go makes the new mount namespace private (MS_REC|MS_PRIVATE on /)
	// before exec, so the sandbox's mounts never reach the host. A killed
	// test takes its agents with it (the signal survives their exec).
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	return cmd
}

func sandboxMain(specJSON string) {
	if err := enterSandbox(specJSON); err != nil {
		fmt.Fprintf(os.Stderr, "sandbox: %v\n", err)
		os.Exit(126)
	}
}

// enterSandbox returns only on failure.
func enterSandbox(specJSON string) error {
	var s sandboxSpec
	if err := json.Unmarshal([]byte(specJSON), &s); err != nil {
		return err
	}
	// setns and exec must happen on one thread: the network namespace is
	// the thread's.
	runtime.LockOSThread()
	root := s.Root
	if err := unix.Mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("binding the root: %w", err)
	}
	if err := unix.Mount("proc", filepath.Join(root, "proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	for _, b := range s.Binds {
		dst := filepath.Join(root, b.Dst)
		if err := unix.Mount(b.Src, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("binding %s at %s: %w", b.Src, b.Dst, err)
		}
		if b.ReadOnly {
			if err := unix.Mount("", dst, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
				return fmt.Errorf("making %s read-only: %w", b.Dst, err)
			}
		}
	}
	if s.ReadOnly {
		if err := unix.Mount("", root, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("making the root read-only: %w", err)
		}
	}
	var nsStat unix.Stat_t
	if s.NetNS != "" {
		fd, err := unix.Open(s.NetNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening %s: %w", s.NetNS, err)
		}
		if err := unix.Fstat(fd, &nsStat); err != nil {
			return err
		}
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("joining %s: %w", s.NetNS, err)
		}
		unix.Close(fd)
	}
	if err := unix.Chroot(root); err != nil {
		return fmt.Errorf("chroot %s: %w", root, err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	// Prove the arrangement before handing over: the root refuses writes,
	// and this thread is in the namespace asked for.
	if s.ReadOnly {
		err := unix.Mkdir("/.nodekit-rw-probe", 0o755)
		if err == nil {
			_ = unix.Rmdir("/.nodekit-rw-probe")
			return errors.New("the root filesystem is writable")
		}
		if !errors.Is(err, unix.EROFS) {
			return fmt.Errorf("probing the read-only root: %w", err)
		}
	}
	if s.NetNS != "" {
		var cur unix.Stat_t
		if err := unix.Stat("/proc/thread-self/ns/net", &cur); err != nil {
			return err
		}
		if cur.Ino != nsStat.Ino || cur.Dev != nsStat.Dev {
			return errors.New("not in the requested network namespace")
		}
	}
	if s.Caps != nil {
		if err := limitCapabilities(s.Caps); err != nil {
			return err
		}
	}
	if s.NoNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("setting no_new_privs: %w", err)
		}
	}
	return unix.Exec(s.Argv[0], s.Argv, s.Env)
}

// capabilities by their Kubernetes names.
var capabilities = map[string]int{
	"CHOWN": unix.CAP_CHOWN, "DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE, "DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH,
	"FOWNER": unix.CAP_FOWNER, "FSETID": unix.CAP_FSETID, "KILL": unix.CAP_KILL, "SETGID": unix.CAP_SETGID,
	"SETUID": unix.CAP_SETUID, "SETPCAP": unix.CAP_SETPCAP, "NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE,
	"NET_BROADCAST": unix.CAP_NET_BROADCAST, "NET_ADMIN": unix.CAP_NET_ADMIN, "NET_RAW": unix.CAP_NET_RAW,
	"IPC_LOCK": unix.CAP_IPC_LOCK, "SYS_CHROOT": unix.CAP_SYS_CHROOT, "SYS_PTRACE": unix.CAP_SYS_PTRACE,
	"SYS_ADMIN": unix.CAP_SYS_ADMIN, "SYS_RESOURCE": unix.CAP_SYS_RESOURCE, "MKNOD": unix.CAP_MKNOD,
	"AUDIT_WRITE": unix.CAP_AUDIT_WRITE, "SETFCAP": unix.CAP_SETFCAP, "SYS_MODULE": unix.CAP_SYS_MODULE,
}

// limitCapabilities drops every capability but keep from the bounding set:
// what root gets after exec is what a container runtime would give it.
func limitCapabilities(keep []string) error {
	kept := map[int]bool{}
	for _, name := range keep {
		c, ok := capabilities[name]
		if !ok {
			return fmt.Errorf("unknown capability %q", name)
		}
		kept[c] = true
	}
	last := unix.CAP_LAST_CAP
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = n
		}
	}
	for c := 0; c <= last; c++ {
		if kept[c] {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("dropping capability %d: %w", c, err)
		}
	}
	return nil
}

// unpackImage writes img's filesystem under dst with owners and modes, as a
// runtime's snapshotter would.
func unpackImage(t *testing.T, img v1.Image, dst string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	type dirMode struct {
		path string
		hdr  *tar.Header
	}
	var dirs []dirMode
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading the image: %v", err)
		}
		rel := path.Clean("/" + hdr.Name)
		if rel == "/" {
			continue
		}
		p := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			dirs = append(dirs, dirMode{p, hdr})
		case tar.TypeReg:
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if err := os.Lchown(p, hdr.Uid, hdr.Gid); err != nil {
				t.Fatal(err)
			}
			if err := unix.Chmod(p, uint32(hdr.Mode&0o7777)); err != nil {
				t.Fatal(err)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(hdr.Linkname, p); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(p, hdr.Uid, hdr.Gid); err != nil {
				t.Fatal(err)
			}
		case tar.TypeLink:
			if err := os.Link(filepath.Join(dst, path.Clean("/"+hdr.Linkname)), p); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("%s: unexpected type %q in the image", hdr.Name, hdr.Typeflag)
		}
	}
	// Directory modes last: a 0700 directory must still take its files.
	for _, d := range dirs {
		if err := os.Lchown(d.path, d.hdr.Uid, d.hdr.Gid); err != nil {
			t.Fatal(err)
		}
		if err := unix.Chmod(d.path, uint32(d.hdr.Mode&0o7777)); err != nil {
			t.Fatal(err)
		}
	}
}

// inRoot resolves p inside root the way the container would see it,
// following symbolic links within root (an absolute link target is
// relative to root, never to the host). The result is a host path.
func inRoot(root, p string) (string, error) {
	cur := "/"
	parts := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	for hops := 0; len(parts) > 0; {
		part := parts[0]
		parts = parts[1:]
		if part == "" || part == "." {
			continue
		}
		next := path.Join(cur, part)
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			cur = next // not a link, or does not exist (yet)
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("%s: too many symbolic links", p)
		}
		if !path.IsAbs(target) {
			target = path.Join(cur, target)
		}
		parts = append(strings.Split(strings.Trim(path.Clean(target), "/"), "/"), parts...)
		cur = "/"
	}
	return filepath.Join(root, cur), nil
}
