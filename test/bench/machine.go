package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// machine describes where the figures were measured.
type machine struct {
	CPUs      int
	CPUModel  string
	MemBytes  int64
	Kernel    string
	OS        string
	GoVersion string
	Commit    string
	load1     float64
}

// loaded reports whether other work competed for the CPUs at the start:
// a 1-minute load average above half the CPU count.
func (m machine) loaded() bool { return m.load1 > float64(m.CPUs)/2 }

func describeMachine(ctx context.Context, repo string) machine {
	m := machine{CPUs: runtime.NumCPU(), CPUModel: "unknown", Kernel: "unknown", OS: "unknown", GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel = cpuModel(b)
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemBytes = memTotal(b)
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		m.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Machine[:])
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		m.OS = osName(b)
	}
	if out, err := exec.CommandContext(ctx, "go", "version").Output(); err == nil {
		m.GoVersion = strings.TrimPrefix(strings.TrimSpace(string(out)), "go version ")
	}
	m.Commit = gitCommit(ctx, repo)
	m.load1, _ = loadAvg()
	return m
}

func cpuModel(cpuinfo []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func memTotal(meminfo []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(meminfo))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

func osName(osRelease []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(osRelease))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "unknown"
}

// gitCommit is HEAD, with "+dirty" when the worktree has changes: figures
// measured on uncommitted code say so.
func gitCommit(ctx context.Context, repo string) string {
	cmd := exec.CommandContext(ctx, "git", "rev-parse", "--short=12", "HEAD")
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	commit := strings.TrimSpace(string(out))
	st := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no")
	st.Dir = repo
	if out, err := st.Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
		commit += "+dirty"
	}
	return commit
}

// loadAvg returns the 1-minute load average and the three averages as text.
func loadAvg() (float64, string) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return 0, "unknown"
	}
	l1, _ := strconv.ParseFloat(f[0], 64)
	return l1, strings.Join(f[:3], " ")
}
