package awsemu

import (
	"bufio"
	"context"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// StartMoto runs moto_server (an independent AWS emulator many teams use
// locally) on a loopback port it picks itself, stops it when the test ends
// and returns its base URL. Tests using it skip when moto is not
// installed: it is optional. The awsemu tests check the emulator against
// it, and end-to-end tests check clients against a store that is not ours.
func StartMoto(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		t.Skip("moto_server not on PATH; skipping the cross-check against moto (optional: pip install 'moto[server]')")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-H", "127.0.0.1", "-p", "0")
	// Its own process group, so wrapper scripts (pyenv shims) and the
	// server die together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	stderr, err := cmd.StderrPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting moto_server: %v", err)
	}
	urlc := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		re := regexp.MustCompile(`Running on (http://127\.0\.0\.1:\d+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urlc <- m[1]:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-scanned
		_ = cmd.Wait()
	})
	select {
	case url := <-urlc:
		return url
	case <-scanned:
		t.Fatal("moto_server exited before announcing its address")
	case <-time.After(2 * time.Minute):
		t.Fatal("moto_server did not announce its address within 2 minutes")
	}
	return ""
}
