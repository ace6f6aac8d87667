package main

import (
	"testing"
	"time"
)

func TestParseBenchLine(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		ok      bool
		want    string
		metrics map[string]float64
	}{
		{"standard with bytes", "BenchmarkReadParseCRI-2   \t      16\t  70735041 ns/op\t 948.71 MB/s\t   12345 B/op\t     3 allocs/op", true,
			"BenchmarkReadParseCRI-2", map[string]float64{"ns/op": 70735041, "MB/s": 948.71, "B/op": 12345, "allocs/op": 3}},
		{"custom metric", "BenchmarkScrape \t 100\t 1500000 ns/op\t 900000 cpu-ns/op\t 5 B/op\t 1 allocs/op", true,
			"BenchmarkScrape", map[string]float64{"ns/op": 1500000, "cpu-ns/op": 900000, "B/op": 5, "allocs/op": 1}},
		{"header", "goos: linux", false, "", nil},
		{"PASS", "PASS", false, "", nil},
		{"log line starting like a benchmark", "BenchmarkX failed: boom", false, "", nil},
		{"odd fields", "BenchmarkX 10 5 ns/op 7", false, "", nil},
		{"no ns/op", "BenchmarkX 10 5 B/op", false, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseBenchLine(tt.in)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if got.Name != tt.want {
				t.Errorf("name %q, want %q", got.Name, tt.want)
			}
			for k, v := range tt.metrics {
				if got.Metrics[k] != v {
					t.Errorf("%s = %v, want %v", k, got.Metrics[k], v)
				}
			}
			if len(got.Metrics) != len(tt.metrics) {
				t.Errorf("metrics %v, want %v", got.Metrics, tt.metrics)
			}
		})
	}
}

func TestBenchName(t *testing.T) {
	for in, want := range map[string]string{
		"BenchmarkX-2":        "BenchmarkX",
		"BenchmarkX":          "BenchmarkX",
		"BenchmarkX/sub-case": "BenchmarkX/sub-case",
		"BenchmarkX/a-16":     "BenchmarkX/a",
	} {
		if got := benchName(in); got != want {
			t.Errorf("benchName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDerivedFigures(t *testing.T) {
	// 64 MB per op at 1000 MB/s wall: 64 ms/op; 32 ms of CPU per op means
	// 2000 MB per CPU-second.
	file := goBenchResult{
		Spec:     goBench{PerFile: true, LineBytes: 100},
		Line:     benchLine{Metrics: map[string]float64{"ns/op": 64e6, "MB/s": 1000, "allocs/op": 64000}},
		CPUPerOp: 32 * time.Millisecond,
	}
	if got := file.bytesPerOp(); got != 64e6 {
		t.Errorf("bytesPerOp = %v, want 64e6", got)
	}
	if got := file.mbPerCPUSecond(); got != 2000 {
		t.Errorf("mbPerCPUSecond = %v, want 2000", got)
	}
	if lines, exact := file.linesPerOp(); lines != 640000 || exact {
		t.Errorf("linesPerOp = %v, %v; want 640000 estimated", lines, exact)
	}
	file.Line.Metrics["lines/op"] = 500000
	if lines, exact := file.linesPerOp(); lines != 500000 || !exact {
		t.Errorf("linesPerOp with lines/op = %v, %v; want 500000 exact", lines, exact)
	}
	perLine := goBenchResult{Line: benchLine{Metrics: map[string]float64{"ns/op": 50}}}
	if lines, exact := perLine.linesPerOp(); lines != 1 || !exact {
		t.Errorf("per-line benchmark: %v, %v", lines, exact)
	}
	if lines, _ := (goBenchResult{Spec: goBench{NoLines: true}}).linesPerOp(); lines != 0 {
		t.Errorf("a benchmark without lines has %v lines per op", lines)
	}
	if got := perLine.mbPerCPUSecond(); got != 0 {
		t.Errorf("no CPU measured but mbPerCPUSecond = %v", got)
	}
}
