package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// verdict says whether a figure meets its goal.
type verdict int

const (
	unknown verdict = iota // not measured
	met
	missed
	info // reported beside the goals, with no goal of its own
)

func (v verdict) String() string {
	switch v {
	case met:
		return "met"
	case missed:
		return "**NOT MET**"
	case info:
		return "(no goal)"
	default:
		return "not measured"
	}
}

// figure is one number of BENCHMARKS.md beside its goal.
type figure struct {
	Agent    string
	Name     string
	Measured string // formatted value, "" when not measured
	Goal     string
	Verdict  verdict
	Note     string
}

// atMost and atLeast judge a measured value against a bound.
func atMost(v, bound float64) verdict {
	if v <= bound {
		return met
	}
	return missed
}

func atLeast(v, bound float64) verdict {
	if v >= bound {
		return met
	}
	return missed
}

// below is a strict upper bound ("under 40 MiB").
func below(v, bound float64) verdict {
	if v < bound {
		return met
	}
	return missed
}

// section is the detail of one benchmark area: free-form markdown lines and
// the error that stopped it, if any.
type section struct {
	Title string
	Lines []string
	Err   error
	Took  time.Duration
}

func (s *section) addf(format string, args ...any) {
	s.Lines = append(s.Lines, fmt.Sprintf(format, args...))
}

// report is everything BENCHMARKS.md shows.
type report struct {
	Machine   machine
	Started   time.Time
	Took      time.Duration
	LoadStart string
	LoadEnd   string
	Figures   []figure
	Sections  []*section
	// encodeRate is the Go benchmark's read + parse + encode + batch
	// throughput, bytes of input per CPU-second (0 when the go area did
	// not run): the logship area weighs its end-to-end figure with it.
	encodeRate float64
}

func (r *report) add(f figure) { r.Figures = append(r.Figures, f) }

// notMeasured records a goal whose figure a failed section never produced,
// so the table still lists every goal.
func (r *report) notMeasured(agent, name, goal string, err error) {
	note := "not measured"
	if err != nil {
		note = "not measured: " + firstLine(err.Error())
	}
	r.add(figure{Agent: agent, Name: name, Goal: goal, Verdict: unknown, Note: note})
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// write renders BENCHMARKS.md.
func (r *report) write(w io.Writer) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# nodekit benchmarks\n\n")
	p("Written by `make bench` (`go run ./test/bench`) on %s, commit `%s`, in %s.\n",
		r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Machine.Commit, r.Took.Round(time.Second))
	p("Every figure is measured on this machine, on loopback or inside the sandbox's own network namespaces;\n")
	p("none is a timed test. Re-run with `make bench` (needs root: network namespaces, iptables).\n\n")
	if r.Machine.loaded() {
		p("> **Provisional figures.** The machine was busy with other work while this ran (load average %s at the start,\n", r.LoadStart)
		p("> %s at the end, on %d CPUs). Wall-clock figures (requests/s, latencies, MB/s of Go benchmarks, wall time)\n", r.LoadEnd, r.Machine.CPUs)
		p("> are pessimistic under load; CPU-second and RSS figures much less so. Re-run `make bench` on an idle machine\n")
		p("> for the figures of record.\n\n")
	}

	p("## Machine\n\n| | |\n|---|---|\n")
	p("| CPUs (nproc) | %d |\n| CPU model | %s |\n| Memory | %.1f GiB |\n| Kernel | %s |\n| Go | %s |\n| OS | %s |\n| Load average (start → end) | %s → %s |\n\n",
		r.Machine.CPUs, r.Machine.CPUModel, float64(r.Machine.MemBytes)/(1<<30), r.Machine.Kernel, r.Machine.GoVersion, r.Machine.OS, r.LoadStart, r.LoadEnd)

	p("## Figures and goals\n\n| Agent | Figure | Measured | Goal | Verdict | Note |\n|---|---|---|---|---|---|\n")
	for _, f := range r.Figures {
		m := f.Measured
		if m == "" {
			m = "—"
		}
		p("| %s | %s | %s | %s | %s | %s |\n", f.Agent, f.Name, m, f.Goal, f.Verdict, f.Note)
	}
	p("\n## Goals not met\n\n")
	var missedAny, unknownAny bool
	for _, f := range r.Figures {
		switch f.Verdict {
		case missed:
			missedAny = true
			p("- **%s: %s** — measured %s, goal %s.%s\n", f.Agent, f.Name, f.Measured, f.Goal, noteSuffix(f.Note))
		case unknown:
			unknownAny = true
		}
	}
	if !missedAny {
		p("None of the measured figures misses its goal.\n")
	}
	if unknownAny {
		p("\nNot measured in this run (so not shown to be met):\n\n")
		for _, f := range r.Figures {
			if f.Verdict == unknown {
				p("- %s: %s (goal %s).%s\n", f.Agent, f.Name, f.Goal, noteSuffix(f.Note))
			}
		}
	}
	for _, s := range r.Sections {
		p("\n## %s\n\n", s.Title)
		if s.Err != nil {
			p("**This section failed:** `%s`\n\n", strings.ReplaceAll(firstLine(s.Err.Error()), "`", "'"))
		}
		for _, l := range s.Lines {
			p("%s\n", l)
		}
		if s.Took > 0 {
			p("\n_Section took %s._\n", s.Took.Round(time.Second))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func noteSuffix(n string) string {
	if n == "" {
		return ""
	}
	return " " + n
}
