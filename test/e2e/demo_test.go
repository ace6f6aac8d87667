//go:build e2e

package e2e

// End-to-end test of `make demo` (issue 7): the demo program runs once with
// DEMO_ONESHOT=1 and must exit 0, and runs interrupted by a signal at
// several points; every time it must leave no namespace, process, iptables
// rule or temporary directory behind. Needs root (CI runs as root).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodekit/nodekit/test/sandbox"
)

// demoBinaries builds the demo and finds the agents' binaries: $NODEKIT_BIN
// (make e2e sets it to bin/), else they are built here.
func demoBinaries(t *testing.T) (demo, binDir string) {
	t.Helper()
	root := mpRepoRoot(t)
	dir := t.TempDir()
	demo = filepath.Join(dir, "demo")
	pkgs := [][2]string{{"./test/demo", demo}}
	binDir = os.Getenv("NODEKIT_BIN")
	if binDir == "" {
		binDir = dir
		for _, name := range []string{"metaproxy", "logship", "nodeexp"} {
			pkgs = append(pkgs, [2]string{"./cmd/" + name, filepath.Join(dir, name)})
		}
	}
	for _, p := range pkgs {
		cmd := exec.Command("go", "build", "-o", p[1], p[0])
		cmd.Dir = root
		// Static: the real-node demo puts itself in a busybox image.
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", p[0], err, out)
		}
	}
	return demo, binDir
}

// demoRun is one run of the demo program.
type demoRun struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    strings.Builder
	seen   chan string // each stdout line, for waiting on progress
	done   chan error  // Wait's result, once
	exited chan struct{}
}

func demoStart(t *testing.T, demo, binDir string, env ...string) *demoRun {
	t.Helper()
	cmd := exec.Command(demo, "--bin", binDir)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = mpRepoRoot(t) // as make runs it: the real-node story reads README.md and bin/image
	cmd.Stderr = os.Stderr
	// Its own process group, like a job in a terminal, so a test can send
	// Ctrl-C the way a terminal does: to the whole group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	r := &demoRun{cmd: cmd, seen: make(chan string, 1024), done: make(chan error, 1), exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the demo: %v", err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		defer close(r.seen)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			r.mu.Lock()
			r.out.WriteString(line + "\n")
			r.mu.Unlock()
			select {
			case r.seen <- line:
			default: // nobody waits on progress any more
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		<-copied
		r.done <- cmd.Wait()
		close(r.exited)
	}()
	// Whatever happens to the test, the demo gets to clean up, and the test
	// waits for it.
	t.Cleanup(func() {
		select {
		case <-r.exited:
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(2 * time.Minute):
			_ = cmd.Process.Kill()
			t.Errorf("the demo did not exit within 2 minutes of SIGTERM")
		}
	})
	return r
}

func (r *demoRun) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

// waitLine waits for a stdout line containing s.
func (r *demoRun) waitLine(t *testing.T, ctx context.Context, s string) {
	t.Helper()
	for {
		select {
		case line, ok := <-r.seen:
			if !ok {
				t.Fatalf("the demo's output ended before %q:\n%s", s, r.output())
			}
			if strings.Contains(line, s) {
				return
			}
		case <-ctx.Done():
			t.Fatalf("no %q in the demo's output: %v\n%s", s, ctx.Err(), r.output())
		}
	}
}

// wait waits for the demo to exit and returns its exit code.
func (r *demoRun) wait(t *testing.T, ctx context.Context) int {
	t.Helper()
	go func() {
		for range r.seen { // keep draining
		}
	}()
	select {
	case err := <-r.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("waiting for the demo: %v", err)
		}
		return 0
	case <-ctx.Done():
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		t.Fatalf("the demo did not exit: %v\n%s", ctx.Err(), r.output())
		return -1
	}
}

// demoTraces are what the demo announced it created, read from its output;
// a run interrupted early has announced only some of them (the work dir comes
// first, before anything else is created).
type demoTraces struct {
	pid                                     int
	sandboxID, workDir, kubeDir, sandboxDir string
}

var demoTraceRes = map[string]*regexp.Regexp{
	"sandbox id":  regexp.MustCompile(`(?m)^\s+sandbox id\s+(\S+)`),
	"work dir":    regexp.MustCompile(`(?m)^\s+work dir\s+(\S+)`),
	"kube dir":    regexp.MustCompile(`(?m)^\s+kube dir\s+(\S+)`),
	"sandbox dir": regexp.MustCompile(`(?m)^\s+sandbox dir\s+(\S+)`),
}

func demoParseTraces(t *testing.T, r *demoRun) demoTraces {
	t.Helper()
	out := r.output()
	get := func(key string) string {
		if m := demoTraceRes[key].FindStringSubmatch(out); m != nil {
			return m[1]
		}
		return ""
	}
	tr := demoTraces{pid: r.cmd.Process.Pid, sandboxID: get("sandbox id"), workDir: get("work dir"), kubeDir: get("kube dir"), sandboxDir: get("sandbox dir")}
	if tr.workDir == "" {
		t.Fatalf("the demo did not print its work dir:\n%s", out)
	}
	return tr
}

// demoRootIptables is the root namespace's ruleset without counters and
// comments, to compare before and after.
func demoRootIptables(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, table := range []string{"nat", "filter", "mangle"} {
		out, err := exec.Command("iptables-save", "-t", table).Output()
		if err != nil {
			t.Fatalf("iptables-save -t %s: %v", table, err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "#") {
				continue
			}
			if i := strings.Index(line, " ["); strings.HasPrefix(line, ":") && i > 0 {
				line = line[:i]
			}
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// demoCheckClean fails the test for anything the run left behind.
func demoCheckClean(t *testing.T, tr demoTraces, iptablesBefore string) {
	t.Helper()
	if tr.sandboxID != "" {
		out, err := exec.Command("ip", "netns", "list").Output()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), "nk-"+tr.sandboxID+"-") {
			t.Errorf("namespaces of sandbox %s remain:\n%s", tr.sandboxID, out)
		}
	}
	// A sandbox the demo created holds a state file with its pid until it
	// is closed, also one created before the demo printed its id.
	states, _ := filepath.Glob(filepath.Join(sandbox.DefaultStateDir, "*.json"))
	for _, path := range states {
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), fmt.Sprintf(`"pid":%d,`, tr.pid)) {
			t.Errorf("sandbox state file %s of the demo (pid %d) remains: %s", path, tr.pid, b)
		}
	}
	for _, dir := range []string{tr.workDir, tr.kubeDir, tr.sandboxDir} {
		if dir == "" {
			continue
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s remains (stat: %v)", dir, err)
		}
	}
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		for _, mark := range []string{tr.workDir, tr.kubeDir, tr.sandboxDir, "nk-" + tr.sandboxID + "-"} {
			if mark != "" && mark != "nk--" && strings.Contains(cmdline, mark) {
				t.Errorf("process %s still runs: %s", filepath.Base(filepath.Dir(p)), cmdline)
				break
			}
		}
	}
	// The sandbox's addresses never appear in the root namespace's routes.
	routes, err := exec.Command("ip", "-4", "route", "show", "table", "all").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(routes), "\n") {
		for _, addr := range []string{sandbox.MetadataIP, "100.64.0.", "100.96.0."} {
			if strings.Contains(line, addr) {
				t.Errorf("root namespace route mentions %s: %s", addr, line)
			}
		}
	}
	if after := demoRootIptables(t); after != iptablesBefore {
		t.Errorf("the root namespace's iptables rules changed:\nbefore:\n%s\nafter:\n%s", iptablesBefore, after)
	}
}

func TestDemoOneshot(t *testing.T) {
	sandbox.RequireRoot(t)
	demo, binDir := demoBinaries(t)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	before := demoRootIptables(t)

	r := demoStart(t, demo, binDir, "DEMO_ONESHOT=1")
	code := r.wait(t, ctx)
	out := r.output()
	t.Logf("demo output:\n%s", out)
	if code != 0 {
		t.Errorf("DEMO_ONESHOT=1 demo exited %d, want 0", code)
	}
	for _, want := range []string{
		"AWS CLI v2 role arn:aws:iam::123456789012:role/shop-web",
		"Go SDK v2  role arn:aws:iam::123456789012:role/billing-invoicer",
		"refused, as it must be",
		"all 24 lines shipped once and in order across the rotation",
		"stack trace is one event",
		"node_load1 ",
		"every step worked and everything it started was removed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	demoCheckClean(t, demoParseTraces(t, r), before)
}

// TestDemoInterrupted stops the demo with a signal while it comes up and
// while it stays up: it must clean up every time.
func TestDemoInterrupted(t *testing.T) {
	sandbox.RequireRoot(t)
	demo, binDir := demoBinaries(t)
	for _, tt := range []struct {
		name     string
		at       string // progress line that triggers the signal
		sig      syscall.Signal
		group    bool // to the whole process group, as Ctrl-C in a terminal: the children get it too
		wantCode int
	}{
		{"SIGINT while the agents start", "-> starting logship", syscall.SIGINT, false, 130},
		{"SIGTERM while the pods ask for credentials", "-> billing/invoicer", syscall.SIGTERM, false, 130},
		{"SIGINT while it stays up", "The node stays up", syscall.SIGINT, false, 0},
		{"Ctrl-C to the process group while the node starts", "-> creating the sandbox node", syscall.SIGINT, true, 130},
		{"Ctrl-C to the process group while metaproxy starts", "-> starting metaproxy", syscall.SIGINT, true, 130},
		{"Ctrl-C to the process group while it stays up", "The node stays up", syscall.SIGINT, true, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			before := demoRootIptables(t)
			r := demoStart(t, demo, binDir)
			r.waitLine(t, ctx, tt.at)
			pid := r.cmd.Process.Pid
			if tt.group {
				pid = -pid
			}
			if err := syscall.Kill(pid, tt.sig); err != nil {
				t.Fatal(err)
			}
			code := r.wait(t, ctx)
			out := r.output()
			if code != tt.wantCode {
				t.Errorf("exit code %d after %v at %q, want %d\n%s", code, tt.sig, tt.at, tt.wantCode, out)
			}
			if !strings.Contains(out, fmt.Sprintf("%v received", tt.sig)) {
				t.Errorf("the demo did not say it received %v:\n%s", tt.sig, out)
			}
			demoCheckClean(t, demoParseTraces(t, r), before)
		})
	}
}

// TestDemoBrokenAgent runs the demo with a logship that cannot start: the
// demo must name the failed step, go on with the rest, exit 1 and still
// clean up.
func TestDemoBrokenAgent(t *testing.T) {
	sandbox.RequireRoot(t)
	demo, binDir := demoBinaries(t)
	broken := t.TempDir()
	for _, name := range []string{"metaproxy", "nodeexp"} {
		if err := os.Symlink(filepath.Join(binDir, name), filepath.Join(broken, name)); err != nil {
			t.Fatal(err)
		}
	}
	script := "#!/bin/sh\necho 'logship: cannot start (test stand-in)' >&2\nexit 2\n"
	if err := os.WriteFile(filepath.Join(broken, "logship"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	before := demoRootIptables(t)

	r := demoStart(t, demo, broken, "DEMO_ONESHOT=1")
	code := r.wait(t, ctx)
	out := r.output()
	if code != 1 {
		t.Errorf("demo with a broken logship exited %d, want 1\n%s", code, out)
	}
	for _, want := range []string{
		"logship: cannot start (test stand-in)",         // the agent's own words
		"  - starting logship: logship exited",          // named in the summary
		"skipped the read-back: logship is not running", // the rest goes on
		"AWS CLI v2 role arn:aws:iam::123456789012:role/shop-web",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out)
		}
	}
	demoCheckClean(t, demoParseTraces(t, r), before)
}

// TestDemoInstructions runs every command the demo tells a newcomer to try
// while it stays up, so its instructions (and the README section quoting
// them) cannot drift: each must succeed and print something.
func TestDemoInstructions(t *testing.T) {
	sandbox.RequireRoot(t)
	demo, binDir := demoBinaries(t)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	before := demoRootIptables(t)

	r := demoStart(t, demo, binDir)
	r.waitLine(t, ctx, "Agents' logs:")
	out := r.output()
	block := out[strings.Index(out, "The node stays up"):]
	var setup string
	var cmds []string
	for _, line := range strings.Split(block, "\n") {
		cmd, ok := strings.CutPrefix(line, "    ")
		switch {
		case !ok || strings.TrimSpace(cmd) == "":
		case strings.HasPrefix(cmd, "set -a;"):
			setup = cmd // loads the emulator's settings for the commands after it
		default:
			cmds = append(cmds, setup+"\n"+cmd)
		}
	}
	if len(cmds) < 10 {
		t.Fatalf("found only %d commands in the instructions:\n%s", len(cmds), block)
	}
	for _, script := range cmds {
		name := script[strings.LastIndexByte(script, '\n')+1:]
		t.Run(name, func(t *testing.T) {
			cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
			defer ccancel()
			follow := strings.HasSuffix(name, " -f")
			var stdout, stderr demoBuffer
			cmd := exec.CommandContext(cctx, "bash", "-euo", "pipefail", "-c", script)
			// An interactive shell in the instructions reads EOF and exits.
			cmd.Stdin = strings.NewReader("")
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if follow {
				// --follow never ends: a first line is success.
				for stdout.Len() == 0 && cctx.Err() == nil {
					select {
					case <-cctx.Done():
					case <-time.After(100 * time.Millisecond): // bounded poll on the command's output
					}
				}
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
				_ = cmd.Wait()
				if stdout.Len() == 0 {
					t.Errorf("no output before the timeout; stderr: %s", stderr.String())
				}
				return
			}
			err := cmd.Wait()
			if err != nil {
				t.Errorf("%v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
			}
			if stdout.Len() == 0 && !strings.Contains(name, " bash") {
				t.Errorf("no output; stderr: %s", stderr.String())
			}
		})
	}
	if err := syscall.Kill(r.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t, ctx); code != 0 {
		t.Errorf("demo exited %d after Ctrl-C while staying up\n%s", code, r.output())
	}
	demoCheckClean(t, demoParseTraces(t, r), before)
}

// demoBuffer is a buffer safe for a writer and a reader goroutine.
type demoBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *demoBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *demoBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

func (b *demoBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
