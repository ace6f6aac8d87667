package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerdicts(t *testing.T) {
	tests := []struct {
		name string
		got  verdict
		want verdict
	}{
		{"at most, equal", atMost(0.5, 0.5), met},
		{"at most, over", atMost(0.51, 0.5), missed},
		{"at least, equal", atLeast(0.95, 0.95), met},
		{"at least, under", atLeast(0.94, 0.95), missed},
		{"below, equal is a miss", below(40, 40), missed},
		{"below, under", below(39.9, 40), met},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestReportWrite(t *testing.T) {
	r := &report{
		Machine: machine{CPUs: 2, CPUModel: "Test CPU", MemBytes: 4 << 30, Kernel: "Linux 6.1", GoVersion: "go1.26", Commit: "abc123", load1: 5},
		Started: time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC), Took: 90 * time.Second, LoadStart: "5.00 4.00 3.00", LoadEnd: "6.00 5.00 4.00",
	}
	r.add(figure{Agent: "logship", Name: "throughput", Measured: "120 MB/CPU-s", Goal: "≥ 100", Verdict: met})
	r.add(figure{Agent: "nodeexp", Name: "RSS ratio", Measured: "0.9×", Goal: "≤ 0.7×", Verdict: missed, Note: "binary pages"})
	r.notMeasured("metaproxy", "first request", "< 20 ms", errors.New("bed failed\nsecond line"))
	r.add(figure{Agent: "logship", Name: "allocs per line", Measured: "0.01", Goal: "none", Verdict: info})
	r.Sections = append(r.Sections, &section{Title: "metaproxy", Err: errors.New("bed `failed`"), Lines: []string{"detail line"}})
	var b strings.Builder
	if err := r.write(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"commit `abc123`",
		"**Provisional figures.**",
		"| CPU model | Test CPU |",
		"| logship | throughput | 120 MB/CPU-s | ≥ 100 | met |",
		"- **nodeexp: RSS ratio** — measured 0.9×, goal ≤ 0.7×. binary pages",
		"- metaproxy: first request (goal < 20 ms). not measured: bed failed",
		"**This section failed:** `bed 'failed'`",
		"detail line",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "| logship | allocs per line | 0.01 | none | (no goal) |") {
		t.Errorf("informational figure not shown as such:\n%s", out)
	}
	if strings.Contains(out, "- logship: allocs per line") {
		t.Error("an informational figure is listed as not measured")
	}
	if strings.Contains(out, "second line") {
		t.Error("multi-line error leaked into the table")
	}
	if strings.Contains(out, "None of the measured figures misses") {
		t.Error("claims every goal met while one is missed")
	}
}

func TestReportIdleMachineNotProvisional(t *testing.T) {
	r := &report{Machine: machine{CPUs: 8, load1: 0.5}}
	r.add(figure{Agent: "a", Name: "n", Measured: "1", Goal: "g", Verdict: met})
	var b strings.Builder
	if err := r.write(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "Provisional") {
		t.Error("an idle machine's figures marked provisional")
	}
	if !strings.Contains(b.String(), "None of the measured figures misses its goal.") {
		t.Error("all-met report does not say so")
	}
}
