package sandbox

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// helperEnv selects what TestHelperSandboxProcess does when the tests run
// the test binary as a subprocess.
const helperEnv = "NODEKIT_SANDBOX_HELPER"

// TestHelperSandboxProcess is not a test on its own: it is the subprocess of
// TestInterruptedRunsAreCleaned. It builds a sandbox, starts a process in a
// pod, reports, and then dies the way it is told to.
func TestHelperSandboxProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return
	}
	sb := Start(t, Config{Pods: 1})
	cmd := sb.Pods()[0].Command(t.Context(), "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("READY %s %d %s\n", sb.ID(), cmd.Process.Pid, sb.Dir())
	switch mode {
	case "kill":
		io.Copy(io.Discard, os.Stdin) // until the parent kills us
	case "fatal":
		t.Fatal("deliberate failure with a sandbox up")
	case "panic":
		panic("deliberate panic with a sandbox up")
	}
}

type helperReport struct {
	id       string
	sleepPid int
	dir      string
}

// runHelper starts the test binary as a sandbox-building subprocess, waits
// for its READY line and hands the report and the running command to act,
// which must make the subprocess end. It returns the subprocess's error.
func runHelper(t *testing.T, mode string, act func(*exec.Cmd)) (helperReport, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSandboxProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var rep helperReport
	var rest strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "READY" {
			rep.id, rep.dir = f[1], f[3]
			rep.sleepPid, _ = strconv.Atoi(f[2])
			break
		}
		rest.WriteString(sc.Text() + "\n")
	}
	if rep.id == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper never reported READY; output:\n%s%s", rest.String(), stderr.String())
	}
	act(cmd)
	io.Copy(io.Discard, stdout)
	return rep, cmd.Wait()
}

// waitExited blocks until pid has exited (a zombie counts), or fails the test
// after a generous bound if it never does.
func waitExited(t *testing.T, pid int) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return
	}
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	defer unix.Close(fd)
	// A pidfd becomes readable when the process exits.
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 30_000)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n == 0 {
			t.Fatalf("process %d still running after its sandbox was removed (poll: %v)", pid, err)
		}
		return
	}
}

func TestInterruptedRunsAreCleaned(t *testing.T) {
	RequireRoot(t)
	tests := []struct {
		mode string
		act  func(*exec.Cmd)
		// stale: the run could not clean up, the next sandbox must.
		stale bool
	}{
		{"fatal", func(*exec.Cmd) {}, false},
		{"panic", func(*exec.Cmd) {}, false},
		{"kill", func(c *exec.Cmd) { c.Process.Signal(syscall.SIGKILL) }, true},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			rep, err := runHelper(t, tt.mode, tt.act)
			if err == nil {
				t.Fatalf("helper in mode %s succeeded, want it to fail", tt.mode)
			}
			if tt.stale {
				if got := namespacesOf(t, rep.id); len(got) != 2 {
					t.Fatalf("after SIGKILL, namespaces of %s = %v, want node and pod left behind", rep.id, got)
				}
				// Starting any sandbox removes the dead one's leftovers.
				Start(t, Config{})
			}
			if got := namespacesOf(t, rep.id); len(got) != 0 {
				t.Errorf("namespaces of sandbox %s left: %v", rep.id, got)
			}
			for _, path := range []string{rep.dir, statePath(DefaultStateDir, rep.id)} {
				if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s still exists (stat: %v)", path, err)
				}
			}
			waitExited(t, rep.sleepPid)
		})
	}
}

func TestCleanStale(t *testing.T) {
	live := Start(t, Config{Pods: 1})

	var idb [4]byte
	rand.Read(idb[:])
	orphan := hex.EncodeToString(idb[:])
	for _, name := range []string{"nk-" + orphan + "-node", "nk-" + orphan + "-pod1"} {
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", name, err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "delete", name).Run() })
	}
	// An unrelated namespace that merely looks similar is never touched.
	other := "nk-" + orphan + "-other"
	if out, err := exec.Command("ip", "netns", "add", other).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", other, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", other).Run() })

	if err := CleanStale(t.Context(), "", nil); err != nil {
		t.Fatalf("CleanStale: %v", err)
	}
	if got := namespacesOf(t, orphan); len(got) != 1 || got[0] != other {
		t.Errorf("namespaces with id %s after CleanStale = %v, want only %s", orphan, got, other)
	}
	if got := namespacesOf(t, live.ID()); len(got) != 2 {
		t.Errorf("live sandbox's namespaces after CleanStale = %v, want node and pod kept", got)
	}
	if _, err := os.Stat(statePath(DefaultStateDir, live.ID())); err != nil {
		t.Errorf("live sandbox's state file: %v", err)
	}
}
