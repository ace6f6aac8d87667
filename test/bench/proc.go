package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/<pid>/stat. It
// is 100 on every Linux architecture Go supports.
const clockTick = 100

// memStatus is the memory a process holds, from /proc/<pid>/status.
type memStatus struct {
	RSS  int64 // VmRSS, bytes: resident now
	Peak int64 // VmHWM, bytes: the most it was ever resident
	// RssAnon and RssFile split VmRSS into heap/stacks and mapped file
	// pages (mostly the binary itself); 0 on kernels without them.
	Anon, File int64
}

// readMem reads VmRSS and VmHWM of pid.
func readMem(pid int) (memStatus, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStatus{}, fmt.Errorf("reading memory of process %d: %w", pid, err)
	}
	m, err := parseStatus(b)
	if err != nil {
		return memStatus{}, fmt.Errorf("parsing /proc/%d/status: %w", pid, err)
	}
	return m, nil
}

// parseStatus extracts VmRSS and VmHWM ("VmRSS:\t  12345 kB").
func parseStatus(b []byte) (memStatus, error) {
	var m memStatus
	var seen int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM" && key != "RssAnon" && key != "RssFile") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return m, fmt.Errorf("%s: unexpected value %q", key, val)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("%s: %w", key, err)
		}
		switch key {
		case "VmRSS":
			m.RSS = kb << 10
			seen++
		case "VmHWM":
			m.Peak = kb << 10
			seen++
		case "RssAnon":
			m.Anon = kb << 10
		case "RssFile":
			m.File = kb << 10
		}
	}
	if seen != 2 {
		return m, fmt.Errorf("VmRSS or VmHWM missing (a kernel thread or a zombie?)")
	}
	return m, nil
}

// readCPU returns the user+system CPU time pid has used.
func readCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading CPU time of process %d: %w", pid, err)
	}
	d, err := parseStatCPU(b)
	if err != nil {
		return 0, fmt.Errorf("parsing /proc/%d/stat: %w", pid, err)
	}
	return d, nil
}

// parseStatCPU reads utime and stime (fields 14 and 15) of /proc/<pid>/stat.
// The command name (field 2) may hold spaces and parentheses, so fields are
// counted from the last ')'.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("no command name in %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return 0, fmt.Errorf("only %d fields after the command name", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("utime/stime %q: %w", s, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTick, nil
}

// mib formats bytes as MiB.
func mib(b int64) float64 { return float64(b) / (1 << 20) }
