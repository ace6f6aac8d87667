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

func render(t *testing.T, r *report) string {
	t.Helper()
	var b strings.Builder
	if err := r.write(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

const mb = 1 << 20

// fullReport is a report of every area with made-up results.
func fullReport() *report {
	lat := func(p50, p99, max float64) latencies {
		return latencies{N: 10, P50: time.Duration(p50 * 1e6), P99: time.Duration(p99 * 1e6), Max: time.Duration(max * 1e6)}
	}
	r := &report{
		Machine: machine{CPUs: 2, CPUModel: "Test CPU", MemBytes: 4 << 30, Kernel: "Linux 6.1", GoVersion: "go1.26", Commit: "abc123", load1: 5},
		Started: time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC), Took: 90 * time.Second, LoadStart: "5.00 4.00 3.00", LoadEnd: "6.00 5.00 4.00",
	}
	for _, a := range sections {
		r.Areas = append(r.Areas, area{Name: a, Took: 30 * time.Second})
	}
	read := goBenchResult{Spec: goBench{Pkg: "./pkg/logship", Name: "BenchmarkReadParseCRI", PerFile: true, LineBytes: fixtureLineBytes},
		Line:     benchLine{Name: "BenchmarkReadParseCRI", Metrics: map[string]float64{"ns/op": 2e6, "MB/s": 1500, "B/op": 300, "allocs/op": 37}},
		Raw:      "BenchmarkReadParseCRI 1000 2000000 ns/op 1500 MB/s",
		CPUPerOp: 4 * time.Millisecond}
	r.Go = &goResults{FixtureLineBytes: fixtureLineBytes, Rows: []goRow{
		{Spec: read.Spec, Res: read},
		{Spec: goBench{Pkg: "./pkg/nodeexp/podstats", Name: "BenchmarkPodCollector100", NoLines: true}, Failed: true},
	}, Failed: []goFailure{{Pkg: "./pkg/nodeexp/podstats", Name: "BenchmarkPodCollector100", Err: "exit status 1"}}}
	r.Metaproxy = &mpResults{
		Throughput: &mpThroughput{Clients: 16, Rounds: 6, Round: 3 * time.Second, CredsPath: mpCredsPath, DirectPort: mpDirectPort,
			Direct: mpPath{Requests: 1000, Rate: 2000, Lat: lat(1, 2, 3)}, Proxied: mpPath{Requests: 990, Rate: 1980, Lat: lat(1.1, 2.2, 3.3)}, CPUMicrosPerRequest: 42},
		First:  &mpFirst{Trials: []time.Duration{5 * time.Millisecond, 7 * time.Millisecond}, Lat: lat(5, 7, 7)},
		Memory: &mpMemory{Pods: 110, WithNamespaces: 26, Roles: 20, Sessions: 110, Mem: memStatus{RSS: 30 * mb, Peak: 35 * mb, File: 9 * mb}},
	}
	r.Logship = &lsResults{LineBytes: lsLineBytes, Lines: 1_000_000, BytesIn: 110_000_000, Accepted: 1_000_000, Shipped: true,
		Wall: 3 * time.Second, CPU: time.Second, Mem: memStatus{RSS: 20 * mb, Peak: 30 * mb, File: 8 * mb}, Puts: 120, BodyBytes: 330e6,
		Floor: &lsFloor{Input: 110e6, Body: 330e6, SHA256Rate: 1e9, TCPRate: 2e9, EncodeRate: 500e6, Batches: 120, CheckpointCPU: 30 * time.Millisecond, CheckpointMeasured: true, Used: time.Second}}
	r.Nodeexp = &neResults{Version: nodeExporterVersion, Compared: true, Shared: []string{"cpu", "meminfo"}, Scrapes: 200,
		Ours:    neRow{Name: "nodeexp", CPUPerScrape: time.Millisecond, Lat: lat(2, 3, 4), Samples: 900, Mem: memStatus{RSS: 14 * mb, Peak: 15 * mb}, Later: memStatus{RSS: 12 * mb}},
		Theirs:  neRow{Name: "node_exporter", CPUPerScrape: 4 * time.Millisecond, Lat: lat(5, 6, 7), Samples: 950, Mem: memStatus{RSS: 20 * mb, Peak: 21 * mb}, Later: memStatus{RSS: 20 * mb}},
		Between: 12 * time.Second, Floor: &memStatus{RSS: 10 * mb, File: 5 * mb}, OurArgs: []string{"nodeexp", "--x"}, TheirArgs: []string{"node_exporter", "--y"}}
	r.Suite = &suiteResults{Pods: 50, LinesPerPod: 100, Sessions: 50, Idle: 10 * time.Second, Total: 60 * mb, IdleCPU: 80 * time.Millisecond,
		Rows: []suiteRow{{Name: "metaproxy", Mem: memStatus{RSS: 20 * mb}, CPU: 30 * time.Millisecond}, {Name: "logship", Mem: memStatus{RSS: 25 * mb}, CPU: 40 * time.Millisecond}, {Name: "nodeexp", Mem: memStatus{RSS: 15 * mb}, CPU: 10 * time.Millisecond}}}
	r.Realnode = &rnResults{Image: "nodekit:dev", Kubelet: "v1.36.3", Containerd: "v2.4.2", IdlePods: 30, Window: 30 * time.Second,
		Idle:  &rnIdle{WorkingSet: 50 * mb, CPUPct: 2.5, Containers: []rnContainer{{Name: "logship", WorkingSet: 20 * mb, Limit: "64Mi", CPUPct: 1}}},
		Burst: &rnBurst{Lines: 400000, MB: 40, Took: 12 * time.Second, CPU: 0.8, Peak: 70 * mb, PeakLogship: 35 * mb, LogshipLimit: "64Mi"}}
	return r
}

// TestReportRendersEveryArea: the template renders each area's results,
// and the figures table judges them.
func TestReportRendersEveryArea(t *testing.T) {
	out := render(t, fullReport())
	for _, want := range []string{
		"commit `abc123`, in 1m30s.",
		"**Provisional figures.**",
		"| CPU model | Test CPU |",
		"| Memory | 4.0 GiB |",
		"| logship | read + CRI parse (Go benchmark), per core | 750 MB/s | > 1000 MB/s per core (1 GB/s) | **NOT MET** |",
		"| nodeexp | pod collector, 100-pod fixture tree | — | < 2 ms per scrape | not measured | not measured |",
		"| BenchmarkReadParseCRI (./pkg/logship) | 2.00 ms | 1500 | 4.00 ms | 750 | 300 | 37 | ≈0.00129 |",
		"| BenchmarkPodCollector100 | failed | | | | | | |",
		"- `./pkg/nodeexp/podstats BenchmarkPodCollector100`: exit status 1",
		"BenchmarkReadParseCRI 1000 2000000 ns/op 1500 MB/s\n```",
		"| metaproxy | credential path throughput, 16 keep-alive clients in pods | 0.990× (1980 vs 2000 req/s) |",
		"### Credential path, 16 keep-alive clients, one per pod namespace",
		"| metaproxy (DNAT) | 990 | 1980 | 1.100 ms | 2.200 ms | 3.300 ms |",
		"metaproxy used 42.0 µs of CPU per request during its rounds.",
		"Times (ms): 5.00, 7.00. Median 5.00 ms, max 7.00 ms.",
		"110 pods on the node (26 with namespaces, the rest API objects only), 20 roles",
		"| logship | CRI input shipped to awsemu per CPU-second | 110 MB/CPU-s | ≥ 80 MB per CPU-second | met |",
		"| 110 MB | 1000000 | 3s | 1.00 s | 110 | 30.0 MiB | 20.0 MiB | 120 |",
		"came to 330 MB, 3.0× the input",
		"| SigV4: SHA-256 of every request body | 330 MB of bodies at 1000 MB per CPU-s | 0.33 | 24% |",
		"| checkpoints, one fsynced write per batch | 120 commits of 4 streams in the bench's state filesystem | 0.03 | 2% |",
		"| **sum** | | **0.74** | **54%** |",
		"Left for the HTTP client and SDK, file polls, the runtime and the scheduler: 0.63 CPU-s. logship used 1.00 CPU-s in all.",
		"## nodeexp against node_exporter " + nodeExporterVersion,
		"| nodeexp | CPU per scrape vs node_exporter " + nodeExporterVersion + " | 0.250× (1.00 vs 4.00 ms) |",
		"the same 2 collectors (cpu, meminfo)",
		"| node_exporter | 4.00 ms | 5.00 ms | 6.00 ms | 950 | 20.0 MiB | 0.0 MiB | 21.0 MiB |",
		"12s after the last scrape, as between two Prometheus scrapes: nodeexp 12.0 MiB, node_exporter 20.0 MiB (0.60×)",
		"it holds 10.0 MiB (5.0 MiB file-backed), 0.50× node_exporter: 59% of the 17.0 MiB that ≤ 0.85× allows",
		"node_exporter's command line: `node_exporter --y`",
		"| suite | idle RSS of metaproxy + logship + nodeexp, 50 pods | 60.0 MiB | < 64 MiB total | met | sum of VmRSS after 10s idle |",
		"| logship | 25.0 MiB | 0.0 MiB | 0.0 MiB | 40 ms (0.40% of a core) |",
		"| **total** | **60.0 MiB** | | | 80 ms |",
		"## real node: the nodekit pod's footprint from its cgroups",
		"The image `nodekit:dev` from `make image`, installed by README.md's steps on the real node (kubelet v1.36.3, containerd v2.4.2, cgroup v1), 30 pods",
		"| container | idle working set | memory limit | idle CPU (% of a core, over 30s) |",
		"| logship | 20.0 MiB | 64Mi | 1.00% |",
		"| **pod** | **50.0 MiB** | | **2.50%** |",
		"Burst: 400000 lines of 100 bytes (40 MB) written as fast as busybox can, shipped in 12s (from the pod's creation). The pod used 0.80 CPU-s (50 MB per CPU-s)",
		"| pod | nodekit pod CPU for a 40 MB log burst | 0.80 CPU-s (50 MB per CPU-s) |  | (no goal) |",
		"_Section took 30s._",
		"- **logship: read + CRI parse (Go benchmark), per core** — measured 750 MB/s, goal > 1000 MB/s per core (1 GB/s). MB per CPU-second",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(out, "<no value>") || strings.Contains(out, "%!") {
		t.Errorf("report has unfilled values:\n%s", out)
	}
	if t.Failed() {
		t.Logf("report:\n%s", out)
	}
}

// TestReportFailedAreas: an area that failed shows its error, and the
// goals it would have answered are listed as not measured, with why.
func TestReportFailedAreas(t *testing.T) {
	r := fullReport()
	r.Metaproxy.First, r.Metaproxy.Memory = nil, nil
	r.Areas[1].Err = errors.New("bed `failed`\nsecond line")
	r.Logship = &lsResults{LineBytes: lsLineBytes, Lines: 100, Accepted: 40, WaitEnded: true, CPU: time.Second, Wall: 2 * time.Second}
	r.Areas[2].Err = errors.New("not shipped within 6m0s")
	r.Nodeexp = &neResults{Version: nodeExporterVersion, BuildErr: "go: module lookup disabled"}
	r.Areas[3].Err = errors.New("building node_exporter")
	r.Suite = nil
	r.Areas[4].Err = errors.New("suite: bed")
	out := render(t, r)
	for _, want := range []string{
		"**This section failed:** `bed 'failed'`",
		"- metaproxy: first request, pod appeared 300 ms earlier, STS +120 ms (goal < 20 ms (median of 10 pods)). not measured: bed `failed`",
		"### Credential path, 16 keep-alive clients",
		"Only 40 of 100 lines were accepted when the wait ended (1.0 CPU-s, 2s).",
		"- logship: CRI input shipped to awsemu per CPU-second (goal ≥ 80 MB per CPU-second). not measured: not shipped within 6m0s",
		"could not be built from the Go module proxy, so nodeexp was not compared:\n\n```\ngo: module lookup disabled\n```",
		"- suite: idle RSS of metaproxy + logship + nodeexp, 50 pods (goal < 64 MiB total). not measured: suite: bed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(out, "second line") {
		t.Error("multi-line error leaked into the report")
	}
	if strings.Contains(out, "| Input | Lines |") {
		t.Error("an unshipped run shows the shipped run's table")
	}
	if t.Failed() {
		t.Logf("report:\n%s", out)
	}
}

func TestReportIdleMachineNotProvisional(t *testing.T) {
	r := &report{Machine: machine{CPUs: 8, load1: 0.5}, Areas: []area{{Name: "suite"}},
		Suite: &suiteResults{Idle: time.Second, Total: mb}}
	out := render(t, r)
	if strings.Contains(out, "Provisional") {
		t.Error("an idle machine's figures marked provisional")
	}
	if !strings.Contains(out, "None of the measured figures misses its goal.") {
		t.Errorf("all-met report does not say so:\n%s", out)
	}
}
