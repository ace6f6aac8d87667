package main

import (
	"fmt"
	"time"
)

// The goals BENCHMARKS.md judges, and how each area's results answer
// them: the figures table. The areas only measure (their results); the
// words are here and in report.md.tmpl.

// figures are the goals the Go benchmarks answer.
func (g *goResults) figures(r *report) []figure {
	if ran, _ := r.ran("go"); !ran {
		return nil
	}
	var fs []figure
	const readGoal = "> 1000 MB/s per core (1 GB/s)"
	if res, ok := g.result("BenchmarkReadParseCRI"); ok && res.CPUPerOp > 0 {
		v := res.mbPerCPUSecond()
		fs = append(fs, figure{Agent: "logship", Name: "read + CRI parse (Go benchmark), per core", Measured: fmt.Sprintf("%.0f MB/s", v),
			Goal: readGoal, Verdict: atLeast(v, 1000), Note: fmt.Sprintf("MB per CPU-second, GOMAXPROCS=1; wall clock said %.0f MB/s", res.Line.Metrics["MB/s"])})
	} else {
		fs = append(fs, figure{Agent: "logship", Name: "read + CRI parse (Go benchmark), per core", Goal: readGoal, Verdict: unknown, Note: "not measured"})
	}
	if res, ok := g.result("BenchmarkReadParseEncodeBatch"); ok && res.CPUPerOp > 0 {
		fs = append(fs, figure{Agent: "logship", Name: "read + parse + encode + batch (Go benchmark), per core", Measured: fmt.Sprintf("%.0f MB/s", res.mbPerCPUSecond()),
			Goal: "none (the end-to-end goal is ≥ 80 MB/CPU-s)", Verdict: info, Note: "MB per CPU-second, GOMAXPROCS=1"})
	}
	if res, ok := g.result("BenchmarkBatch"); ok {
		fs = append(fs, figure{Agent: "logship", Name: "batch building, allocations per line", Measured: fmt.Sprintf("%.2f", res.Line.Metrics["allocs/op"]),
			Goal: "none (reported)", Verdict: info, Note: fmt.Sprintf("%.0f ns CPU per event", float64(res.CPUPerOp.Nanoseconds()))})
	}
	const podGoal = "< 2 ms per scrape"
	if res, ok := g.result("BenchmarkPodCollector100"); ok && res.CPUPerOp > 0 {
		v := ms(res.CPUPerOp)
		fs = append(fs, figure{Agent: "nodeexp", Name: "pod collector, 100-pod fixture tree", Measured: fmt.Sprintf("%.2f ms CPU", v),
			Goal: podGoal, Verdict: below(v, 2), Note: podNote(res)})
	} else {
		fs = append(fs, figure{Agent: "nodeexp", Name: "pod collector, 100-pod fixture tree", Goal: podGoal, Verdict: unknown, Note: "not measured"})
	}
	return fs
}

const (
	mpRatioGoal = "≥ 0.95× direct IMDS emulator"
	mpFirstGoal = "< 20 ms (median of 10 pods)"
	mpRSSGoal   = "< 40 MiB"
)

// figures are the goals metaproxy's results answer.
func (m *mpResults) figures(r *report) []figure {
	if ran, _ := r.ran("metaproxy"); !ran {
		return nil
	}
	if m == nil {
		m = &mpResults{}
	}
	var fs []figure
	if t := m.Throughput; t != nil {
		fs = append(fs, figure{Agent: "metaproxy", Name: "credential path throughput, 16 keep-alive clients in pods",
			Measured: fmt.Sprintf("%.3f× (%.0f vs %.0f req/s)", t.Ratio(), t.Proxied.Rate, t.Direct.Rate), Goal: mpRatioGoal,
			Verdict: atLeast(t.Ratio(), 0.95), Note: fmt.Sprintf("p99 %.2f ms vs %.2f ms direct", ms(t.Proxied.Lat.P99), ms(t.Direct.Lat.P99))})
	} else {
		fs = append(fs, r.notMeasured("metaproxy", "metaproxy", "credential path throughput, 16 keep-alive clients in pods", mpRatioGoal))
	}
	if f := m.First; f != nil {
		fs = append(fs, figure{Agent: "metaproxy", Name: "first request, pod appeared 300 ms earlier, STS +120 ms",
			Measured: fmt.Sprintf("%.2f ms median", ms(f.Lat.P50)), Goal: mpFirstGoal, Verdict: below(ms(f.Lat.P50), 20),
			Note: fmt.Sprintf("max %.2f ms over %d pods", ms(f.Lat.Max), len(f.Trials))})
	} else {
		fs = append(fs, r.notMeasured("metaproxy", "metaproxy", "first request, pod appeared 300 ms earlier, STS +120 ms", mpFirstGoal))
	}
	if mm := m.Memory; mm != nil {
		fs = append(fs, figure{Agent: "metaproxy", Name: "RSS with 110 pods and 20 roles", Measured: fmt.Sprintf("%.1f MiB", mib(mm.Mem.RSS)),
			Goal: mpRSSGoal, Verdict: below(mib(mm.Mem.RSS), 40), Note: fmt.Sprintf("VmRSS once all 110 pods' credentials were cached; peak (VmHWM) over the whole run, load included: %.1f MiB", mib(mm.Mem.Peak))})
	} else {
		fs = append(fs, r.notMeasured("metaproxy", "metaproxy", "RSS with 110 pods and 20 roles", mpRSSGoal))
	}
	return fs
}

const (
	lsTputGoal = "≥ 80 MB per CPU-second"
	lsRSSGoal  = "< 40 MiB"
)

// figures are the goals logship's results answer.
func (l *lsResults) figures(r *report) []figure {
	if ran, _ := r.ran("logship"); !ran {
		return nil
	}
	if l == nil || !l.Shipped {
		return []figure{
			r.notMeasured("logship", "logship", "CRI input shipped to awsemu per CPU-second", lsTputGoal),
			r.notMeasured("logship", "logship", "peak RSS during that burst", lsRSSGoal),
		}
	}
	return []figure{
		{Agent: "logship", Name: "CRI input shipped to awsemu per CPU-second", Measured: fmt.Sprintf("%.0f MB/CPU-s", l.MBPerCPU()),
			Goal: lsTputGoal, Verdict: atLeast(l.MBPerCPU(), lsGoalMBPerCPU),
			Note: fmt.Sprintf("%.0f MB in 4 containers, %.1f CPU-s, wall %s (fluent-bit 4.2.8: ~11)", float64(l.BytesIn)/1e6, l.CPU.Seconds(), l.Wall.Round(100*time.Millisecond))},
		{Agent: "logship", Name: "peak RSS during that burst", Measured: fmt.Sprintf("%.1f MiB", mib(l.Mem.Peak)),
			Goal: lsRSSGoal, Verdict: below(mib(l.Mem.Peak), 40), Note: "VmHWM"},
	}
}

const (
	neCPUGoal = "≤ 0.5× node_exporter"
	neRSSGoal = "≤ 0.85× node_exporter"
)

// figures are the goals the comparison answers.
func (n *neResults) figures(r *report) []figure {
	if ran, _ := r.ran("nodeexp"); !ran {
		return nil
	}
	if n == nil || !n.Compared {
		return []figure{
			r.notMeasured("nodeexp", "nodeexp", "CPU per scrape vs node_exporter "+nodeExporterVersion, neCPUGoal),
			r.notMeasured("nodeexp", "nodeexp", "RSS vs node_exporter "+nodeExporterVersion, neRSSGoal),
		}
	}
	cpuRatio := float64(n.Ours.CPUPerScrape) / float64(n.Theirs.CPUPerScrape)
	rssRatio := float64(n.Ours.Mem.RSS) / float64(n.Theirs.Mem.RSS)
	peakRatio := float64(n.Ours.Mem.Peak) / float64(n.Theirs.Mem.Peak)
	return []figure{
		{Agent: "nodeexp", Name: "CPU per scrape vs node_exporter " + nodeExporterVersion,
			Measured: fmt.Sprintf("%.3f× (%.2f vs %.2f ms)", cpuRatio, ms(n.Ours.CPUPerScrape), ms(n.Theirs.CPUPerScrape)), Goal: neCPUGoal,
			Verdict: atMost(cpuRatio, 0.5), Note: fmt.Sprintf("%d alternating scrapes each, same %d collectors", n.Scrapes, len(n.Shared))},
		{Agent: "nodeexp", Name: "RSS vs node_exporter " + nodeExporterVersion,
			Measured: fmt.Sprintf("%.3f× (%.1f vs %.1f MiB)", rssRatio, mib(n.Ours.Mem.RSS), mib(n.Theirs.Mem.RSS)), Goal: neRSSGoal,
			Verdict: atMost(rssRatio, neRSSGoalRatio), Note: fmt.Sprintf("VmRSS after the scrapes; peak (VmHWM) ratio %.2f×", peakRatio)},
	}
}

const suiteGoal = "< 64 MiB total"

// figures are the goals the suite answers.
func (s *suiteResults) figures(r *report) []figure {
	if ran, _ := r.ran("suite"); !ran {
		return nil
	}
	if s == nil {
		return []figure{r.notMeasured("suite", "suite", "idle RSS of metaproxy + logship + nodeexp, 50 pods", suiteGoal)}
	}
	return []figure{{Agent: "suite", Name: "idle RSS of metaproxy + logship + nodeexp, 50 pods", Measured: fmt.Sprintf("%.1f MiB", mib(s.Total)),
		Goal: suiteGoal, Verdict: below(mib(s.Total), 64), Note: "sum of VmRSS after " + s.Idle.String() + " idle"}}
}

// podNote shows the pod collector benchmark's own CPU figure beside ours.
func podNote(res goBenchResult) string {
	n := fmt.Sprintf("wall clock %.2f ms/op", res.Line.Metrics["ns/op"]/1e6)
	if v, ok := res.Line.Metrics["cpu-ns/op"]; ok {
		n += fmt.Sprintf("; the benchmark's own cpu-ns/op: %.2f ms", v/1e6)
	}
	return n
}

// figures are the real node's: reported, with no goal of their own.
func (rn *rnResults) figures(r *report) []figure {
	if ran, _ := r.ran("realnode"); !ran {
		return nil
	}
	idleName := fmt.Sprintf("nodekit pod working set, idle, %d pods", rnIdlePods)
	if rn == nil || rn.Idle == nil {
		return []figure{r.notMeasured("realnode", "pod", idleName, "")}
	}
	fs := []figure{
		{Agent: "pod", Name: idleName, Measured: fmt.Sprintf("%.1f MiB", mib(rn.Idle.WorkingSet)), Verdict: info,
			Note: "memory.usage_in_bytes less inactive file pages of the pod's cgroup, as the kubelet counts it"},
		{Agent: "pod", Name: fmt.Sprintf("nodekit pod CPU, idle, %d pods", rnIdlePods),
			Measured: fmt.Sprintf("%.2f%% of a core", rn.Idle.CPUPct), Verdict: info, Note: fmt.Sprintf("cpuacct.usage over %v", rn.Window)},
	}
	if b := rn.Burst; b != nil {
		fs = append(fs,
			figure{Agent: "pod", Name: "nodekit pod peak working set, 40 MB log burst",
				Measured: fmt.Sprintf("%.1f MiB", mib(b.Peak)), Verdict: info, Note: fmt.Sprintf("logship's container %.1f MiB", mib(b.PeakLogship))},
			figure{Agent: "pod", Name: "nodekit pod CPU for a 40 MB log burst",
				Measured: fmt.Sprintf("%.2f CPU-s (%.0f MB per CPU-s)", b.CPU, b.MBPerCPU()), Verdict: info,
				Note: fmt.Sprintf("all three containers, from the first line written to the last accepted: %v", b.Took.Round(100*time.Millisecond))})
	}
	return fs
}
