package main

import (
	_ "embed"
	"fmt"
	"io"
	"strings"
	"text/template"
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

// area is one benchmark area that ran: its name (see sections), the error
// that stopped it, if any, and how long it took. What it measured is in the
// report's field of the same name.
type area struct {
	Name string
	Err  error
	Took time.Duration
}

// ErrLine is the area's error on one line, for the report.
func (a area) ErrLine() string {
	if a.Err == nil {
		return ""
	}
	return strings.ReplaceAll(firstLine(a.Err.Error()), "`", "'")
}

// report is everything BENCHMARKS.md shows: the machine and the results of
// each area that ran. The measurement code fills it; the goals (figures)
// and report.md.tmpl turn it into the document.
type report struct {
	Machine   machine
	Started   time.Time
	Took      time.Duration
	LoadStart string
	LoadEnd   string
	Areas     []area

	Go        *goResults
	Metaproxy *mpResults
	Logship   *lsResults
	Nodeexp   *neResults
	Suite     *suiteResults
	Realnode  *rnResults
}

// ran reports whether the area named name ran, and its error.
func (r *report) ran(name string) (bool, error) {
	for _, a := range r.Areas {
		if a.Name == name {
			return true, a.Err
		}
	}
	return false, nil
}

// notMeasured is the figure of a goal no result answers.
func (r *report) notMeasured(areaName, agent, name, goal string) figure {
	note := "not measured"
	if _, err := r.ran(areaName); err != nil {
		note = "not measured: " + firstLine(err.Error())
	}
	return figure{Agent: agent, Name: name, Goal: goal, Verdict: unknown, Note: note}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

//go:embed report.md.tmpl
var reportTemplate string

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"mib":  func(b int64) float64 { return mib(b) },
	"ms":   ms,
	"ns":   fmtNs,
	"secs": func(d time.Duration) float64 { return d.Seconds() },
	"round": func(d time.Duration, to string) (time.Duration, error) {
		unit, err := time.ParseDuration(to)
		return d.Round(unit), err
	},
	"utc":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") },
	"join": strings.Join,
	"div":  func(a, b float64) float64 { return a / b },
	"mul":  func(a, b float64) float64 { return a * b },
	"f64":  func(v int64) float64 { return float64(v) },
	"pct":  func(a, b float64) float64 { return 100 * a / b },
	"tail": tailString,
}).Parse(reportTemplate))

// write renders BENCHMARKS.md.
func (r *report) write(w io.Writer) error {
	var b strings.Builder
	if err := reportTmpl.Execute(&b, r); err != nil {
		return fmt.Errorf("rendering the report: %w", err)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Figures are the goals' table, from the areas' results.
func (r *report) Figures() []figure {
	var fs []figure
	fs = append(fs, r.Go.figures(r)...)
	fs = append(fs, r.Metaproxy.figures(r)...)
	fs = append(fs, r.Logship.figures(r)...)
	fs = append(fs, r.Nodeexp.figures(r)...)
	fs = append(fs, r.Suite.figures(r)...)
	fs = append(fs, r.Realnode.figures(r)...)
	return fs
}

// Missed and Unmeasured are the figures that miss their goal and the goals
// no figure answers.
func (r *report) Missed() []figure { return r.withVerdict(missed) }

func (r *report) Unmeasured() []figure { return r.withVerdict(unknown) }

func (r *report) withVerdict(v verdict) []figure {
	var out []figure
	for _, f := range r.Figures() {
		if f.Verdict == v {
			out = append(out, f)
		}
	}
	return out
}

// NodeExporterVersion is the node_exporter nodeexp is compared with.
func (r *report) NodeExporterVersion() string { return nodeExporterVersion }

// Provisional reports figures taken on a busy machine.
func (r *report) Provisional() bool { return r.Machine.loaded() }

// fmtNs shows nanoseconds in the unit that suits them.
func fmtNs(ns float64) string {
	switch {
	case ns <= 0:
		return "—"
	case ns < 1e3:
		return fmt.Sprintf("%.0f ns", ns)
	case ns < 1e6:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	case ns < 1e9:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	default:
		return fmt.Sprintf("%.2f s", ns/1e9)
	}
}
