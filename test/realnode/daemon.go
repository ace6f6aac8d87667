package realnode

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// daemon is one of the node's long-running processes, started inside the
// node namespace with nsenter, never `ip netns exec`: that unshares the mount
// namespace and remounts /sys, so the kubelet would find no cgroups and its
// bind mounts would not reach containerd.
type daemon struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (n *Node) startDaemon(name, bin string, args ...string) (*daemon, error) {
	logPath := n.path("logs", name+".log")
	out, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s's log: %w", name, err)
	}
	defer out.Close() // the child has its own descriptor
	cmd := exec.Command("nsenter", append([]string{"--net=" + n.NodeNS.Path(), bin}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = n.dir
	// nsenter execs the daemon, which keeps the death signal: a killed test
	// takes its daemons along (the next New cleans the rest).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	d := &daemon{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	n.logger.Debug("started", "daemon", name, "pid", cmd.Process.Pid, "log", logPath)
	return d, nil
}

// alive returns an error saying how the daemon ended, with its last log
// lines, once it has.
func (d *daemon) alive() error {
	select {
	case <-d.done:
		return fmt.Errorf("%s exited (%v); the end of %s:\n%s", d.name, d.err, d.log, logTail(d.log, 3000))
	default:
		return nil
	}
}

// stop sends sig to the daemon's process group and waits up to grace for
// it to end, then kills it.
func (d *daemon) stop(sig syscall.Signal, grace time.Duration) error {
	if d == nil {
		return nil
	}
	select {
	case <-d.done:
		return nil
	default:
	}
	pgid := d.cmd.Process.Pid
	_ = syscall.Kill(-pgid, sig)
	select {
	case <-d.done:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-d.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", d.name, pgid)
	}
}

// waitFor polls cond every interval until it returns true, an error, or
// the timeout passes; while it waits, every daemon must stay alive.
func (n *Node) waitFor(ctx context.Context, what string, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		for _, d := range n.daemons {
			if err := d.alive(); err != nil {
				return fmt.Errorf("waiting for %s: %w", what, err)
			}
		}
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last error: %v)", what, ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

var errNotReady = errors.New("not ready")
