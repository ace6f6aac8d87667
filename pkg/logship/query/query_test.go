package query

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/smithy-go/middleware"

	"github.com/nodekit/nodekit/pkg/agent"
	"github.com/nodekit/nodekit/test/awsemu"
)

type selectionCase struct {
	name string
	args []string
	keep func(line) bool
}

func selectionCases() []selectionCase {
	re := regexp.MustCompile(`line 0[0-9]5 `)
	return []selectionCase{
		{"namespace", []string{"-n", "shop"}, func(l line) bool { return l.ns == "shop" }},
		{"pod_prefix_in_namespace", []string{"-n", "shop", "web-7f9c*"},
			func(l line) bool { return l.ns == "shop" && strings.HasPrefix(l.pod, "web-7f9c") }},
		{"pod_prefix_any_namespace", []string{"web-7f9c*"}, func(l line) bool { return strings.HasPrefix(l.pod, "web-7f9c") }},
		{"pod_glob_inside", []string{"web-*-def34"}, func(l line) bool { return l.pod == "web-7f9c-def34" }},
		{"flags_after_pod", []string{"web-7f9c-def34", "-n", "shop", "-c", "sidecar"},
			func(l line) bool { return l.pod == "web-7f9c-def34" && l.container == "sidecar" }},
		{"container", []string{"--container", "app", "--namespace", "shop"},
			func(l line) bool { return l.ns == "shop" && l.container == "app" }},
		{"stderr", []string{"--stream", "stderr", "-n", "shop"}, func(l line) bool { return l.ns == "shop" && l.stream == "stderr" }},
		{"grep", []string{"--grep", "upstream timeout"}, func(l line) bool { return strings.Contains(l.log, "upstream timeout") }},
		{"grep_wildcard", []string{"--grep", "from db*"}, func(l line) bool { return strings.Contains(l.log, "from db") }},
		{"grep_and_pod", []string{"--grep", "timeout", "web-7f9c-abc12", "-n", "shop"},
			func(l line) bool {
				return strings.Contains(l.log, "timeout") && l.pod == "web-7f9c-abc12" && l.ns == "shop"
			}},
		{"regex", []string{"--regex", re.String()}, func(l line) bool { return re.MatchString(l.log) }},
		{"window", []string{"--start", testNow.Add(-8 * time.Minute).Format(time.RFC3339), "--end", "now-4m"},
			func(l line) bool {
				return !l.ts.Before(testNow.Add(-8*time.Minute)) && l.ts.UnixMilli() <= testNow.Add(-4*time.Minute).UnixMilli()
			}},
		{"since", []string{"--since", "3m", "-n", "infra"},
			func(l line) bool { return l.ns == "infra" && !l.ts.Before(testNow.Add(-3*time.Minute)) }},
		{"nothing", []string{"-n", "nosuchns"}, func(line) bool { return false }},
	}
}

func TestSelection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	all := fixture(60)
	e.put(all...)
	for _, tt := range selectionCases() {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--cluster", "prod"}, tt.args...)
			before := e.emu.Count("FilterLogEvents")
			got, err := e.run(e.deps(), args...)
			if err != nil {
				t.Fatalf("query %q: %v", args, err)
			}
			want := selectLines(all, tt.keep)
			if got != plainLines(want) {
				t.Fatalf("query %q printed\n%s\nwant (%d lines, time order)\n%s", args, got, len(want), plainLines(want))
			}
			// Pages of 3 events: a selection of more than 3 lines took more
			// than one FilterLogEvents call.
			if calls := e.emu.Count("FilterLogEvents") - before; len(want) > 3 && calls < 2 {
				t.Fatalf("%d lines came in %d FilterLogEvents calls, want pagination", len(want), calls)
			}
		})
	}
}

// TestSelectionCheckedHere: a store that filters less than asked (moto
// answered a JSON filter pattern with every event) must not widen the
// answer: the command checks the selection on each decoded record too.
// Here the service sees neither the filter pattern nor the stream prefix.
func TestSelectionCheckedHere(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	all := fixture(60)
	e.put(all...)
	e.putRaw("other-stream", all[0].ts, "plain text, not JSON")
	d := e.deps()
	d.awsOptions = append(d.awsOptions, config.WithAPIOptions([]func(*middleware.Stack) error{ignoreFilters}))
	for _, tt := range selectionCases() {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--cluster", "prod"}, tt.args...)
			got, err := e.run(d, args...)
			if err != nil {
				t.Fatalf("query %q: %v", args, err)
			}
			if want := plainLines(selectLines(all, tt.keep)); got != want {
				t.Fatalf("query %q printed\n%s\nwant\n%s", args, got, want)
			}
		})
	}
}

// ignoreFilters makes FilterLogEvents reach the service without its
// filter pattern and stream prefix.
func ignoreFilters(s *middleware.Stack) error {
	return s.Initialize.Add(middleware.InitializeMiddlewareFunc("IgnoreFilters", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		if f, ok := in.Parameters.(*cloudwatchlogs.FilterLogEventsInput); ok {
			plain := *f
			plain.FilterPattern, plain.LogStreamNamePrefix = nil, nil
			in.Parameters = &plain
		}
		return next.HandleInitialize(ctx, in)
	}), middleware.Before)
}

func TestLimitAndLogGroupFlag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	all := fixture(30)
	e.put(all...)
	got, err := e.run(e.deps(), "--log-group", testGroup, "--limit", "4", "-n", "shop")
	if err != nil {
		t.Fatal(err)
	}
	want := selectLines(all, func(l line) bool { return l.ns == "shop" })[:4]
	if got != plainLines(want) {
		t.Fatalf("--limit 4 printed\n%s\nwant\n%s", got, plainLines(want))
	}
}

func TestOutputFormats(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	all := fixture(12)
	e.put(all...)
	want := selectLines(all, func(l line) bool { return l.ns == "shop" })

	t.Run("json", func(t *testing.T) {
		got, err := e.run(e.deps(), "--cluster", "prod", "-n", "shop", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
		if len(lines) != len(want) {
			t.Fatalf("-o json printed %d lines, want %d:\n%s", len(lines), len(want), got)
		}
		for i, s := range lines {
			var je jsonEvent
			dec := json.NewDecoder(strings.NewReader(s))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&je); err != nil {
				t.Fatalf("line %d %q is not a JSON event: %v", i, s, err)
			}
			w := want[i]
			ts, err := time.Parse(time.RFC3339Nano, je.Time)
			if err != nil || !ts.Equal(w.ts) {
				t.Fatalf("line %d time %q, want %s (%v)", i, je.Time, w.ts.Format(time.RFC3339Nano), err)
			}
			if je.Namespace != w.ns || je.Pod != w.pod || je.Container != w.container || je.Stream != w.stream ||
				je.Log != w.log || je.LogStream != w.streamName() || je.EventID == "" || je.Kubernetes == nil ||
				je.Kubernetes.Labels["app"] != "web" || je.Kubernetes.DockerID != w.id {
				t.Fatalf("line %d = %+v, want %+v", i, je, w)
			}
		}
	})
	t.Run("raw", func(t *testing.T) {
		got, err := e.run(e.deps(), "--cluster", "prod", "-n", "shop", "-o", "raw")
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, l := range want {
			b.WriteString(l.record() + "\n")
		}
		if got != b.String() {
			t.Fatalf("-o raw printed\n%s\nwant the stored records\n%s", got, b.String())
		}
	})
}

func TestForeignEventsShownAsTheyAre(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	l := fixture(1)[0]
	e.put(l)
	// An event some other writer put in the group: not a record.
	ts := l.ts.Add(time.Second)
	e.putRaw("other-stream", ts, "plain text, not JSON")
	got, err := e.run(e.deps(), "--cluster", "prod")
	if err != nil {
		t.Fatal(err)
	}
	want := l.plain() + "\nother-stream  " + time.UnixMilli(ts.UnixMilli()).UTC().Format(plainTime) + "  plain text, not JSON\n"
	if got != want {
		t.Fatalf("printed %q, want %q", got, want)
	}
}

func TestThrottlingIsRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	all := fixture(24)
	e.put(all...)
	e.emu.SetFault("FilterLogEvents", awsemu.Fault{ThrottleEvery: 2})
	got, err := e.run(e.deps(), "--cluster", "prod")
	if err != nil {
		t.Fatalf("query under throttling: %v", err)
	}
	if got != plainLines(all) {
		t.Fatalf("under throttling printed\n%s\nwant\n%s", got, plainLines(all))
	}
	// 24 events in pages of 3 is 8 pages; every second call throttled.
	if n := e.emu.Count("FilterLogEvents"); n < 15 {
		t.Fatalf("%d FilterLogEvents calls, want the throttled ones retried (>= 15)", n)
	}
}

// followHarness runs --follow with a test-driven poll clock.
type followHarness struct {
	ticks chan time.Time
	polls chan struct{}
	out   *syncBuffer
	done  chan error
}

func startFollow(t *testing.T, e *env, args ...string) (*followHarness, context.CancelFunc) {
	t.Helper()
	h := &followHarness{ticks: make(chan time.Time), polls: make(chan struct{}), out: &syncBuffer{}, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(testContext(t))
	d := e.deps()
	d.after = func(time.Duration) <-chan time.Time { return h.ticks }
	d.polled = func() {
		select {
		case h.polls <- struct{}{}:
		case <-ctx.Done():
		}
	}
	args = append([]string{"--page-size", "3"}, args...)
	go func() { h.done <- run(ctx, args, h.out, io.Discard, d) }()
	t.Cleanup(func() {
		cancel()
		<-h.done
	})
	return h, cancel
}

// poll lets the follower run one more poll and waits until it printed.
func (h *followHarness) poll(t *testing.T) {
	t.Helper()
	select {
	case h.ticks <- time.Now():
	case err := <-h.done:
		t.Fatalf("follow ended early: %v", err)
	}
	h.waitPolled(t)
}

func (h *followHarness) waitPolled(t *testing.T) {
	t.Helper()
	select {
	case <-h.polls:
	case err := <-h.done:
		t.Fatalf("follow ended early: %v", err)
	}
}

func TestFollow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	all := fixture(18)
	first, later := all[:12], all[12:]
	e.put(first...)
	shop := func(ls []line) []line { return selectLines(ls, func(l line) bool { return l.ns == "shop" }) }

	h, cancel := startFollow(t, e, "--cluster", "prod", "-n", "shop", "--follow", "--follow-overlap", "2m")
	h.waitPolled(t)
	if got := h.out.String(); got != plainLines(shop(first)) {
		t.Fatalf("first poll printed\n%s\nwant\n%s", got, plainLines(shop(first)))
	}

	// Nothing new: a poll re-reads the overlap and prints nothing.
	h.poll(t)
	if got := h.out.String(); got != plainLines(shop(first)) {
		t.Fatalf("an idle poll printed duplicates:\n%s", got)
	}

	// Lines shipped after the follow started, one of them ingested late
	// with a timestamp older than lines already printed.
	late := line{ns: "shop", pod: "web-7f9c-late1", container: "app", id: "c9", stream: "stdout",
		ts: first[len(first)-1].ts.Add(-30 * time.Second), log: "late line"}
	e.put(append(later, late)...)
	h.poll(t)
	want := plainLines(shop(first)) + plainLines(sortByTime(append(shop(later), late)))
	if got := h.out.String(); got != want {
		t.Fatalf("after new lines printed\n%s\nwant\n%s", got, want)
	}
	h.poll(t)
	if got := h.out.String(); got != want {
		t.Fatalf("a further poll changed the output:\n%s\nwant\n%s", got, want)
	}
	cancel()
	if err := <-h.done; err != nil {
		t.Fatalf("follow ended with %v after cancel, want nil", err)
	}
	h.done <- nil // for the cleanup
}

func TestFollowSurvivesThrottling(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	all := fixture(6)
	e.put(all[:3]...)
	h, _ := startFollow(t, e, "--cluster", "prod", "-f")
	h.waitPolled(t)
	// Throttle every call: the SDK gives up, the follower keeps its window.
	e.emu.SetFault("FilterLogEvents", awsemu.Fault{ThrottleEvery: 1})
	e.put(all[3:]...)
	h.poll(t)
	if got := h.out.String(); got != plainLines(all[:3]) {
		t.Fatalf("while throttled printed\n%s", got)
	}
	e.emu.ClearFaults()
	h.poll(t)
	if got := h.out.String(); got != plainLines(all) {
		t.Fatalf("after throttling stopped printed\n%s\nwant\n%s", got, plainLines(all))
	}
}

func sortByTime(ls []line) []line {
	out := append([]line(nil), ls...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].ts.Before(out[j-1].ts); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func TestInsights(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	all := fixture(30)
	e.put(all...)
	tests := []struct {
		name  string
		query string
		want  []map[string]string
	}{
		{
			name: "fields_filter_sort_limit",
			query: `fields kubernetes.pod_name, log | filter kubernetes.namespace_name = "shop" and stream = "stderr"` +
				` | sort @timestamp desc | limit 2`,
			want: func() []map[string]string {
				sel := selectLines(all, func(l line) bool { return l.ns == "shop" && l.stream == "stderr" })
				var out []map[string]string
				for i := len(sel) - 1; i >= len(sel)-2; i-- {
					out = append(out, map[string]string{"kubernetes.pod_name": sel[i].pod, "log": sel[i].log})
				}
				return out
			}(),
		},
		{
			name:  "stats_count_by",
			query: `stats count(*) as lines by kubernetes.namespace_name | sort lines desc, kubernetes.namespace_name asc`,
			want: []map[string]string{
				{"kubernetes.namespace_name": "shop", "lines": "20"},
				{"kubernetes.namespace_name": "infra", "lines": "5"},
				{"kubernetes.namespace_name": "staging", "lines": "5"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.run(e.deps(), "--cluster", "prod", "--since", "1h", "--insights", tt.query, "-o", "json")
			if err != nil {
				t.Fatal(err)
			}
			var rows []map[string]string
			for _, s := range strings.Split(strings.TrimSpace(got), "\n") {
				var row map[string]string
				if err := json.Unmarshal([]byte(s), &row); err != nil {
					t.Fatalf("row %q: %v", s, err)
				}
				rows = append(rows, row)
			}
			if fmt.Sprint(rows) != fmt.Sprint(tt.want) {
				t.Fatalf("rows\n%v\nwant\n%v", rows, tt.want)
			}
		})
	}

	t.Run("table", func(t *testing.T) {
		got, err := e.run(e.deps(), "--cluster", "prod", "--insights",
			`stats count(*) by kubernetes.namespace_name, stream | sort kubernetes.namespace_name asc, stream asc`)
		if err != nil {
			t.Fatal(err)
		}
		counts := map[[2]string]int{}
		for _, l := range all {
			counts[[2]string{l.ns, l.stream}]++
		}
		var keys [][2]string
		for k := range counts {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b [2]string) int { return strings.Compare(a[0]+" "+a[1], b[0]+" "+b[1]) })
		want := "kubernetes.namespace_name  stream  count(*)\n"
		for _, k := range keys {
			want += fmt.Sprintf("%-27s%-8s%d\n", k[0], k[1], counts[k])
		}
		if got != want {
			t.Fatalf("table\n%s\nwant\n%s", got, want)
		}
	})
}

// TestInsightsPollsUntilComplete drives the polling and the timeout with a
// fake API whose query stays Running.
func TestInsightsPollsUntilComplete(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		runningFor int // polls answered Running before Complete (-1: never)
		status     string
		wantErr    string
		wantStops  int
	}{
		{"completes_after_polls", 3, "Complete", "", 0},
		{"failed", 1, "Failed", "ended with status Failed", 1},
		{"timeout", -1, "", "did not finish within --insights-timeout", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := &fakeInsights{runningFor: tt.runningFor, final: tt.status}
			ticks := make(chan time.Time, 100)
			for range 10 {
				ticks <- time.Time{}
			}
			var out bytes.Buffer
			q := &insightsQuery{api: api, limiter: unlimited(), group: "g", query: "fields @message",
				start: testNow.Add(-time.Hour), end: testNow, poll: time.Second, timeout: time.Hour,
				after: func(time.Duration) <-chan time.Time { return ticks }}
			if tt.runningFor < 0 {
				// Runs out of ticks, then the timeout fires: short, but the
				// test waits on it, not on a clock.
				q.timeout = 50 * time.Millisecond
				q.after = func(time.Duration) <-chan time.Time { return nil }
			}
			err := q.run(t.Context(), &out, io.Discard, formatPlain)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("run = %v, want %q", err, tt.wantErr)
			}
			if api.stops != tt.wantStops {
				t.Fatalf("StopQuery called %d times, want %d", api.stops, tt.wantStops)
			}
			if tt.wantErr == "" && (api.polls != tt.runningFor+1 || out.String() != "@message\nhello\n") {
				t.Fatalf("%d polls, output %q; want %d polls and the table", api.polls, out.String(), tt.runningFor+1)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.put(fixture(3)...)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"unknown_log_group", []string{"--log-group", "/aws/containerinsights/nope/application"}, 1, `log group "/aws/containerinsights/nope/application" does not exist`},
		{"unknown_cluster", []string{"--cluster", "nope", "-n", "shop"}, 1, `does not exist in us-east-1 (check --cluster`},
		{"bad_since", []string{"--cluster", "prod", "--since", "5x"}, 2, `invalid --since: "5x" is not a duration`},
		{"bad_start", []string{"--cluster", "prod", "--start", "yesterday"}, 2, `invalid --start: "yesterday" is not a time`},
		{"end_before_start", []string{"--cluster", "prod", "--start", "now-1h", "--end", "now-2h"}, 2, `is before the start`},
		{"since_and_start", []string{"--cluster", "prod", "--since", "1h", "--start", "now"}, 2, `mutually exclusive`},
		{"bad_regex", []string{"--cluster", "prod", "--regex", "a(b"}, 2, `invalid regular expression`},
		{"bad_grep", []string{"--cluster", "prod", "--grep", `say "hi"`}, 2, `invalid --grep`},
		{"bad_pod", []string{"--cluster", "prod", "Web_1"}, 2, `invalid pod "Web_1"`},
		{"two_pods", []string{"--cluster", "prod", "a", "b"}, 2, `at most one POD`},
		{"bad_stream", []string{"--cluster", "prod", "--stream", "both"}, 2, `invalid --stream`},
		{"bad_output", []string{"--cluster", "prod", "-o", "yaml"}, 2, `invalid --output`},
		{"bad_page_size", []string{"--cluster", "prod", "--page-size", "20000"}, 2, `--page-size must be within`},
		{"no_group", []string{"-n", "shop"}, 2, `--cluster or --log-group is required`},
		{"group_template_needs_exact_pod", []string{"--log-group", "/logs/{pod}", "web-*"}, 2, `needs {pod}`},
		{"group_template_needs_namespace", []string{"--log-group", "/logs/{namespace}"}, 2, `needs {namespace}`},
		{"unknown_flag", []string{"--cluster", "prod", "--colour"}, 2, `flag provided but not defined`},
		{"end_with_follow", []string{"--cluster", "prod", "-f", "--end", "now"}, 2, `--end cannot be used with --follow`},
		{"insights_with_pod", []string{"--cluster", "prod", "--insights", "fields @message", "web"}, 2, `--insights runs the query as given`},
		{"malformed_insights", []string{"--cluster", "prod", "--insights", "frobnicate everything"}, 1, `invalid Logs Insights query`},
		{"insights_unknown_group", []string{"--cluster", "nope", "--insights", "fields @message"}, 1, `log group "/aws/containerinsights/nope/application" does not exist`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stderr := execQuery(t, e.deps(), tt.args...)
			checkOneLineError(t, code, stderr, tt.wantCode, tt.want)
		})
	}
}

func TestThrottledToTheEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.put(fixture(3)...)
	e.emu.SetFault("FilterLogEvents", awsemu.Fault{ThrottleEvery: 1})
	code, stderr := execQuery(t, e.deps(), "--cluster", "prod")
	checkOneLineError(t, code, stderr, 1, "CloudWatch Logs throttled the request 5 times (filtering log events in /aws/containerinsights/prod/application)")
}

// execQuery runs the command through agent.Exec, as cmd/logship will, and
// returns the exit code and what was printed on stderr.
func execQuery(t *testing.T, d deps, args ...string) (int, string) {
	t.Helper()
	var stderr bytes.Buffer
	runFn := func(ctx context.Context, args []string, stdout io.Writer) error {
		return run(ctx, args, stdout, io.Discard, d)
	}
	code := agent.Exec("logship", runFn, args, io.Discard, &stderr)
	return code, stderr.String()
}

func checkOneLineError(t *testing.T, code int, stderr string, wantCode int, want string) {
	t.Helper()
	t.Logf("exit %d: %s", code, strings.TrimSuffix(stderr, "\n"))
	if code != wantCode {
		t.Fatalf("exit code %d, want %d (stderr %q)", code, wantCode, stderr)
	}
	if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
		t.Fatalf("stderr %q is not exactly one line", stderr)
	}
	if !strings.Contains(stderr, want) {
		t.Fatalf("stderr %q does not say %q", stderr, want)
	}
	if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
		t.Fatalf("stderr %q looks like a crash", stderr)
	}
}
