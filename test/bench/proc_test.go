package main

import (
	"os"
	"testing"
	"time"
)

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    memStatus
		wantErr bool
	}{
		{"both", "Name:\tlogship\nVmHWM:\t   40960 kB\nVmRSS:\t   20480 kB\nThreads:\t7\n", memStatus{RSS: 20 << 20, Peak: 40 << 20}, false},
		{"with split", "VmHWM:\t4 kB\nVmRSS:\t3 kB\nRssAnon:\t2 kB\nRssFile:\t1 kB\n", memStatus{RSS: 3 << 10, Peak: 4 << 10, Anon: 2 << 10, File: 1 << 10}, false},
		{"kernel thread has neither", "Name:\tkthreadd\nState:\tS (sleeping)\n", memStatus{}, true},
		{"garbled value", "VmHWM:\t12 MB\nVmRSS:\t1 kB\n", memStatus{}, true},
		{"not a number", "VmHWM:\tx kB\nVmRSS:\t1 kB\n", memStatus{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatus([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"plain", "1234 (nodeexp) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 0 0", 3 * time.Second, false},
		{"name with spaces and parens", "42 (a b) (c)) R 1 42 42 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 0 0", 100 * time.Millisecond, false},
		{"truncated", "42 (x) R 1 2 3", 0, true},
		{"no name", "garbage", 0, true},
		{"bad number", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 a 1 0 0", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// The readers work on a real process: this one.
func TestReadSelf(t *testing.T) {
	m, err := readMem(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.Peak < m.RSS {
		t.Errorf("implausible memory %+v", m)
	}
	if _, err := readCPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := readMem(-1); err == nil {
		t.Error("no error for a process that cannot exist")
	}
}

func TestPercentile(t *testing.T) {
	d := func(n ...int) []time.Duration {
		out := make([]time.Duration, len(n))
		for i, v := range n {
			out[i] = time.Duration(v)
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(100 - i) // unsorted on purpose
	}
	tests := []struct {
		name          string
		in            []time.Duration
		p50, p99, max time.Duration
	}{
		{"empty", nil, 0, 0, 0},
		{"one", d(7), 7, 7, 7},
		{"two", d(9, 1), 1, 9, 9},
		{"hundred", hundred, 50, 99, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := summarise(tt.in)
			if l.P50 != tt.p50 || l.P99 != tt.p99 || l.Max != tt.max || l.N != len(tt.in) {
				t.Errorf("got %+v, want p50 %v p99 %v max %v", l, tt.p50, tt.p99, tt.max)
			}
		})
	}
}
