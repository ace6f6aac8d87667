package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns add` bind-mounts named namespaces.
const netnsDir = "/run/netns"

// Namespace is one named network namespace of a sandbox. Its methods are safe
// for concurrent use until the sandbox (or pod) is closed.
type Namespace struct {
	name   string
	handle netns.NsHandle  // keeps an fd open so Do never races a rename of the mount
	nl     *netlink.Handle // netlink socket created inside the namespace
}

// openNamespace creates the named namespace with `ip netns add` (which also
// makes /run/netns a shared mount, as other tools expect) and opens handles
// to it.
func openNamespace(ctx context.Context, name string) (*Namespace, error) {
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("creating network namespace %q: %w: %s", name, err, out)
	}
	n := &Namespace{name: name, handle: netns.None()}
	h, err := netns.GetFromName(name)
	if err != nil {
		return n, fmt.Errorf("opening network namespace %q: %w", name, err)
	}
	n.handle = h
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return n, fmt.Errorf("opening netlink socket in namespace %q: %w", name, err)
	}
	n.nl = nl
	return n, nil
}

// destroy kills every process in the namespace, closes the handles and
// removes the namespace. It is safe on a half-created Namespace.
func (n *Namespace) destroy(ctx context.Context) error {
	var errs []error
	if err := killNamespaceProcs(n.Path()); err != nil {
		errs = append(errs, err)
	}
	if n.nl != nil {
		n.nl.Close()
		n.nl = nil
	}
	if n.handle.IsOpen() {
		if err := n.handle.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing handle of namespace %q: %w", n.name, err))
		}
		n.handle = netns.None()
	}
	if err := deleteNamespace(ctx, n.name); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// deleteNamespace removes a named namespace; a namespace that is already gone
// is not an error, so two cleanups racing each other both succeed.
func deleteNamespace(ctx context.Context, name string) error {
	if _, err := os.Stat(filepath.Join(netnsDir, name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	out, err := exec.CommandContext(ctx, "ip", "netns", "delete", name).CombinedOutput()
	if err != nil {
		if _, serr := os.Stat(filepath.Join(netnsDir, name)); errors.Is(serr, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("deleting network namespace %q: %w: %s", name, err, out)
	}
	return nil
}

// Name is the namespace's name as `ip netns list` shows it.
func (n *Namespace) Name() string { return n.name }

// Path is the namespace's bind mount, usable with setns(2) or `nsenter --net=`.
func (n *Namespace) Path() string { return filepath.Join(netnsDir, n.name) }

// Netlink returns a netlink handle bound to the namespace, for inspecting or
// changing its links, addresses and routes. Do not close it.
func (n *Namespace) Netlink() *netlink.Handle { return n.nl }

// Do runs fn on a locked OS thread switched into the namespace and returns its
// error. Sockets fn creates stay in the namespace after Do returns. fn runs on
// its own goroutine: goroutines it starts run outside the namespace, and it
// must not call t.FailNow. A panic in fn is re-raised in the caller.
//
// If the thread cannot be switched back, it is left locked so the Go runtime
// discards it rather than reusing a thread in the wrong namespace.
func (n *Namespace) Do(fn func() error) error {
	type result struct {
		err   error
		panic any
	}
	done := make(chan result, 1)
	go func() {
		var res result
		defer func() { done <- res }()
		res.err = n.do(func() (err error) {
			defer func() {
				if p := recover(); p != nil {
					res.panic = p
				}
			}()
			return fn()
		})
	}()
	res := <-done
	if res.panic != nil {
		panic(res.panic)
	}
	return res.err
}

func (n *Namespace) do(fn func() error) (err error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("getting current network namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(n.handle); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering network namespace %q: %w", n.name, err)
	}
	defer func() {
		if rerr := netns.Set(orig); rerr != nil {
			// Stay locked: the thread dies with this goroutine.
			err = errors.Join(err, fmt.Errorf("leaving network namespace %q: %w", n.name, rerr))
			return
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}

// Listen announces on the local address inside the namespace, like
// net.Listen; e.g. node.Listen("tcp", "169.254.169.254:80").
func (n *Namespace) Listen(network, address string) (net.Listener, error) {
	var l net.Listener
	err := n.Do(func() error {
		var err error
		l, err = net.Listen(network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listening on %s %s in namespace %q: %w", network, address, n.name, err)
	}
	return l, nil
}

// ListenPacket is net.ListenPacket inside the namespace.
func (n *Namespace) ListenPacket(network, address string) (net.PacketConn, error) {
	var c net.PacketConn
	err := n.Do(func() error {
		var err error
		c, err = net.ListenPacket(network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listening on %s %s in namespace %q: %w", network, address, n.name, err)
	}
	return c, nil
}

// DialContext connects from inside the namespace, like net.Dialer.DialContext.
// The host must be an IP literal (or "localhost"): name resolution would run
// on other goroutines, outside the namespace, and could reach the host's DNS
// servers.
func (n *Namespace) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("dialing %q from namespace %q: %w", address, n.name, err)
	}
	if host == "localhost" {
		address = net.JoinHostPort("127.0.0.1", port)
	} else if _, err := netip.ParseAddr(host); err != nil {
		return nil, fmt.Errorf("dialing %q from namespace %q: host must be an IP address, names would be resolved outside the namespace", address, n.name)
	}
	var c net.Conn
	err = n.Do(func() error {
		var err error
		d := net.Dialer{Timeout: 10 * time.Second}
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dialing %s %s from namespace %q: %w", network, address, n.name, err)
	}
	return c, nil
}

// Transport returns an HTTP transport whose connections are made inside the
// namespace. It ignores HTTP(S)_PROXY: a proxy would be outside the sandbox.
func (n *Namespace) Transport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           n.DialContext,
		ForceAttemptHTTP2:     false,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// HTTPClient returns a client whose connections are made inside the namespace
// (see Transport and DialContext: URLs must use IP addresses). Its overall
// request timeout is 30s; copy and change it for tests of slow servers.
func (n *Namespace) HTTPClient() *http.Client {
	return &http.Client{Transport: n.Transport(), Timeout: 30 * time.Second}
}

// Command returns a command that runs name inside the namespace through
// `ip netns exec` (which execs name in place, so cmd.Process is the program
// itself, and mounts a /sys that belongs to the namespace). The child gets
// SIGKILL if this process dies, and Close kills whatever still runs in the
// namespace; callers still Wait for what they Start, to reap it.
func (n *Namespace) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.name, name}, args...)...)
	// Pdeathsig fires when the forking thread exits; the Go runtime only ends
	// threads of goroutines that exit locked, which Command's callers are not.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// Pids lists the processes whose network namespace is this one.
func (n *Namespace) Pids() ([]int, error) { return namespacePids(n.Path()) }

// namespacePids lists the processes (other than this one) living in the
// namespace mounted at path, like `ip netns pids`.
func namespacePids(path string) ([]int, error) {
	var want unix.Stat_t
	if err := unix.Stat(path, &want); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading namespace %s: %w", path, err)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st unix.Stat_t
		// Processes exit while we look; a failed stat just means "not ours".
		if err := unix.Stat(filepath.Join("/proc", e.Name(), "ns", "net"), &st); err != nil {
			continue
		}
		if st.Dev == want.Dev && st.Ino == want.Ino {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func killNamespaceProcs(path string) error {
	pids, err := namespacePids(path)
	if err != nil {
		return err
	}
	var errs []error
	for _, pid := range pids {
		if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("killing pid %d in namespace %s: %w", pid, path, err))
		}
	}
	return errors.Join(errs...)
}

// writeSysctl writes a /proc/sys value; call it inside Do, where /proc/sys/net
// shows the namespace's settings.
func writeSysctl(key, value string) error {
	path := filepath.Join("/proc/sys", filepath.FromSlash(key))
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("setting sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// OpenNamespace creates a named network namespace that belongs to no
// sandbox, for a test bed that keeps its own (test/realnode): the caller
// names it, tracks it and removes it with Close (or RemoveNamespace after a
// crash). It has only a loopback interface, down.
func OpenNamespace(ctx context.Context, name string) (*Namespace, error) {
	n, err := openNamespace(ctx, name)
	if err != nil && n != nil {
		err = errors.Join(err, n.destroy(ctx))
	}
	if err != nil {
		return nil, err
	}
	return n, nil
}

// Close kills every process in the namespace and removes it.
func (n *Namespace) Close(ctx context.Context) error { return n.destroy(ctx) }

// RemoveNamespace kills every process in the named namespace and removes
// it; a namespace that does not exist is not an error. For cleaning up
// after a run that died without closing its namespaces.
func RemoveNamespace(ctx context.Context, name string) error {
	path := filepath.Join(netnsDir, name)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return errors.Join(killNamespaceProcs(path), deleteNamespace(ctx, name))
}
