// Package query is `logship query`: it reads the container logs logship
// shipped to CloudWatch Logs the way `kubectl logs` reads a live pod's, so
// SREs can still read a pod's logs after it was rescheduled or deleted.
//
// A selection (namespace, pod name or prefix, container, stdout/stderr,
// text) becomes one FilterLogEvents request series: a CloudWatch JSON filter
// pattern on the record's kubernetes fields, narrowed to the streams whose
// names can match (the shipper's stream template, expanded as far as the
// selection allows), paginated with nextToken. Each record that comes back
// is checked against the selection again, so the answer is right whatever
// the store makes of the pattern. Throttling is absorbed by
// the SDK's retryer and a client-side rate limit. --follow keeps polling
// over overlapping windows and drops events it already printed by eventId,
// so late-ingested events are neither lost nor repeated. --insights runs a
// Logs Insights query instead and prints its result table.
//
// Run is the whole command; cmd/logship calls it for `logship query`.
package query

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"golang.org/x/time/rate"

	"github.com/nodekit/nodekit/pkg/agent"
	"github.com/nodekit/nodekit/pkg/awscfg"
	"github.com/nodekit/nodekit/pkg/logship/naming"
)

// Config is the parsed command line.
type Config struct {
	Cluster   string
	LogGroup  string // a name, or a template over {cluster} and {namespace}
	LogStream string // the shipper's stream template, used to narrow by prefix
	Selection selection
	Regex     *regexp.Regexp
	Since     string
	Start     string
	End       string
	Follow    bool
	Output    string
	Limit     int
	PageSize  int
	Insights  string

	PollInterval    time.Duration
	FollowOverlap   time.Duration
	InsightsTimeout time.Duration
}

// defaultSince is how far back a query without --since or --start reads.
const defaultSince = time.Hour

// apiRate is the client-side limit on CloudWatch Logs calls: FilterLogEvents
// has a low account-wide quota shared with every other reader, so one SRE's
// query should not starve the others (or the shipper's own calls).
const apiRate = 5

// maxAttempts is the SDK retry budget per call. Higher than the agents'
// (awscfg.MaxAttempts) because an interactive query has nothing better to
// do than wait out throttling.
const maxAttempts = 10

// logsAPI is the part of the CloudWatch Logs client the command uses.
type logsAPI interface {
	FilterLogEvents(ctx context.Context, in *cloudwatchlogs.FilterLogEventsInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.FilterLogEventsOutput, error)
	StartQuery(ctx context.Context, in *cloudwatchlogs.StartQueryInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.StartQueryOutput, error)
	GetQueryResults(ctx context.Context, in *cloudwatchlogs.GetQueryResultsInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.GetQueryResultsOutput, error)
	StopQuery(ctx context.Context, in *cloudwatchlogs.StopQueryInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.StopQueryOutput, error)
}

// deps are the seams tests use; the zero value is production.
type deps struct {
	awsOptions []func(*config.LoadOptions) error
	now        func() time.Time
	// after waits between polls (--follow, Insights); time.After by default.
	after func(time.Duration) <-chan time.Time
	// polled is called after each --follow poll has been printed.
	polled    func()
	rateLimit rate.Limit
}

func (d *deps) fill() {
	if d.now == nil {
		d.now = time.Now
	}
	if d.after == nil {
		d.after = time.After
	}
	if d.polled == nil {
		d.polled = func() {}
	}
	if d.rateLimit == 0 {
		d.rateLimit = apiRate
	}
}

const usageText = `Usage: logship query [flags] [POD]

Reads container logs shipped by logship from CloudWatch Logs, like kubectl logs,
also for pods that are gone. POD is a pod name or a prefix with *, e.g. 'web-7f9c*'.
AWS settings come from the SDK's default chain (AWS_REGION, AWS_PROFILE,
AWS_ENDPOINT_URL_CLOUDWATCH_LOGS, ...).

Examples:
  logship query --cluster prod -n shop 'web-7f9c*' --since 2h
  logship query --cluster prod -n shop -c app --grep timeout --stream stderr -f
  logship query --cluster prod --insights 'stats count(*) by kubernetes.namespace_name' --since 1h

Times (--start, --end): now, now-1h, 1h (ago), 2026-11-21T12:00:00Z, 2026-11-21 12:00 (UTC),
Unix seconds. Durations: 30s, 15m, 1h30m, 2d, 1w.

Flags:
`

func newFlagSet(c *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("logship query", flag.ContinueOnError)
	fs.StringVar(&c.Cluster, "cluster", "", "cluster name: the log group is the shipper's "+naming.DefaultGroup)
	fs.StringVar(&c.LogGroup, "log-group", "", "log group name (or a template over {cluster} and {namespace}); overrides --cluster's default")
	fs.StringVar(&c.LogStream, "log-stream", naming.DefaultStream, "the shipper's --log-stream template, used to narrow the search by stream-name prefix")
	for _, name := range []string{"n", "namespace"} {
		fs.StringVar(&c.Selection.Namespace, name, "", "namespace of the pods")
	}
	for _, name := range []string{"c", "container"} {
		fs.StringVar(&c.Selection.Container, name, "", "container name")
	}
	fs.StringVar(&c.Selection.Stream, "stream", "", "only stdout or stderr")
	fs.StringVar(&c.Selection.Grep, "grep", "", "text the log line must contain, matched by CloudWatch (case-sensitive, * is a wildcard)")
	fs.Func("regex", "Go regular expression the log line must match, applied here after CloudWatch's filtering", func(s string) error {
		re, err := regexp.Compile(s)
		if err != nil {
			return fmt.Errorf("invalid regular expression: %w", err)
		}
		c.Regex = re
		return nil
	})
	fs.StringVar(&c.Since, "since", "", "read from this long ago (default 1h when --start is not given either)")
	fs.StringVar(&c.Start, "start", "", "read from this time")
	fs.StringVar(&c.End, "end", "", "read up to this time (default now)")
	for _, name := range []string{"f", "follow"} {
		fs.BoolVar(&c.Follow, name, false, "keep polling for new lines, like tail -f")
	}
	for _, name := range []string{"o", "output"} {
		fs.StringVar(&c.Output, name, formatPlain, "output: plain (namespace/pod/container  time  message), json (one object a line) or raw (the records as stored)")
	}
	fs.IntVar(&c.Limit, "limit", 0, "stop after this many lines (0: no limit; not with --follow)")
	fs.IntVar(&c.PageSize, "page-size", 0, "events per FilterLogEvents call (0: the service's default, up to 10000)")
	fs.StringVar(&c.Insights, "insights", "", "run this Logs Insights query instead and print its result table")
	fs.DurationVar(&c.PollInterval, "poll-interval", 2*time.Second, "how often --follow and --insights poll")
	fs.DurationVar(&c.FollowOverlap, "follow-overlap", time.Minute, "how far back each --follow poll re-reads, for events CloudWatch ingests late (widened to the largest ingestion delay seen)")
	fs.DurationVar(&c.InsightsTimeout, "insights-timeout", 5*time.Minute, "give up on a Logs Insights query after this long")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageText)
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses flags and at most one POD argument, which may come
// before, between or after the flags, as with kubectl.
func parseArgs(args []string, stderr io.Writer) (*Config, error) {
	c := &Config{}
	fs := newFlagSet(c)
	var positional []string
	for {
		if err := agent.ParseFlags(fs, args, stderr); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(positional) > 1 {
		return nil, &agent.UsageError{Err: fmt.Errorf("expected at most one POD argument, got %q", positional)}
	}
	if len(positional) == 1 {
		c.Selection.Pod = positional[0]
	}
	if err := c.validate(); err != nil {
		return nil, &agent.UsageError{Err: err}
	}
	return c, nil
}

func (c *Config) validate() error {
	if c.Cluster == "" && c.LogGroup == "" {
		return errors.New("--cluster or --log-group is required")
	}
	if err := c.Selection.validate(); err != nil {
		return err
	}
	switch c.Output {
	case formatPlain, formatJSON, formatRaw:
	default:
		return fmt.Errorf("invalid --output %q: want plain, json or raw", c.Output)
	}
	if c.Limit < 0 {
		return errors.New("--limit must not be negative")
	}
	if c.PageSize < 0 || c.PageSize > 10000 {
		return errors.New("--page-size must be within [0, 10000]")
	}
	if c.Follow && c.Limit > 0 {
		return errors.New("--limit cannot be used with --follow")
	}
	if c.PollInterval <= 0 || c.InsightsTimeout <= 0 || c.FollowOverlap < 0 {
		return errors.New("--poll-interval and --insights-timeout must be positive, --follow-overlap not negative")
	}
	if c.Insights != "" {
		s := c.Selection
		if s.Pod != "" || s.Container != "" || s.Stream != "" || s.Grep != "" || c.Regex != nil || c.Follow || c.Limit > 0 {
			return errors.New("--insights runs the query as given: put selections in its filter command instead of POD, -c, --stream, --grep, --regex, --follow or --limit")
		}
	}
	return nil
}

// Run is `logship query`: args are the arguments after "query". Results go
// to stdout, usage to stderr; the error, if any, is one line for the main to
// print, an agent.UsageError when the command line is wrong.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return run(ctx, args, stdout, stderr, deps{})
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, d deps) error {
	d.fill()
	c, err := parseArgs(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return oneLine{err}
	}
	if err := execute(ctx, c, stdout, stderr, d); err != nil {
		if c.Follow && errors.Is(err, context.Canceled) && ctx.Err() != nil {
			// Interrupted by the user (Ctrl-C), the normal end of --follow.
			return nil
		}
		return oneLine{err}
	}
	return nil
}

func execute(ctx context.Context, c *Config, stdout, stderr io.Writer, d deps) error {
	now := d.now()
	win, err := resolveWindow(c.Since, c.Start, c.End, defaultSince, c.Follow, now)
	if err != nil {
		return &agent.UsageError{Err: err}
	}
	vals := map[string]string{"{cluster}": c.Cluster, "{namespace}": c.Selection.Namespace,
		"{pod}": c.Selection.Pod, "{container}": c.Selection.Container}
	groupTmpl := c.LogGroup
	if groupTmpl == "" {
		groupTmpl = naming.DefaultGroup
	}
	groupVals := maps.Clone(vals)
	if strings.Contains(c.Selection.Pod, "*") {
		// A group is one name: a pod glob cannot fill it.
		delete(groupVals, "{pod}")
	}
	group, err := expandGroup(groupTmpl, groupVals)
	if err != nil {
		return &agent.UsageError{Err: err}
	}

	opts := append([]func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = maxAttempts
				o.MaxBackoff = 20 * time.Second
			})
		}),
	}, d.awsOptions...)
	awsCfg, err := awscfg.Load(ctx, opts...)
	if err != nil {
		return err
	}
	// Ask for credentials up front: otherwise a missing chain shows up as
	// a long "operation error" about the first call.
	if awsCfg.Credentials == nil {
		return errors.New("no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run where an instance role is available")
	}
	if _, err := awsCfg.Credentials.Retrieve(ctx); err != nil {
		return fmt.Errorf("no AWS credentials (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run where an instance role is available): %w", err)
	}
	api := cloudwatchlogs.NewFromConfig(awsCfg)
	limiter := rate.NewLimiter(d.rateLimit, apiRate)

	if c.Insights != "" {
		end := win.end
		if end.IsZero() {
			end = now
		}
		iq := &insightsQuery{api: api, limiter: limiter, after: d.after, group: group, region: awsCfg.Region, query: c.Insights,
			start: win.start, end: end, poll: c.PollInterval, timeout: c.InsightsTimeout}
		return iq.run(ctx, stdout, stderr, c.Output)
	}

	f := &filter{
		api:       api,
		limiter:   limiter,
		group:     group,
		region:    awsCfg.Region,
		prefix:    streamPrefix(c.LogStream, vals),
		pattern:   c.Selection.filterPattern(),
		pageLimit: int32(c.PageSize),
	}
	p := newPrinter(stdout, c.Output)
	keep := func(e event) bool {
		return strings.HasPrefix(aws.ToString(e.raw.LogStreamName), f.prefix) && c.Selection.matches(e) &&
			(c.Regex == nil || c.Regex.MatchString(e.rec.Log))
	}
	if c.Follow {
		fw := &follower{filter: f, after: d.after, polled: d.polled, poll: c.PollInterval, overlap: c.FollowOverlap, stderr: stderr}
		return fw.run(ctx, win.start, keep, p)
	}
	return f.list(ctx, win, c.Limit, keep, p)
}

// filter reads one selection with FilterLogEvents.
type filter struct {
	api       logsAPI
	limiter   *rate.Limiter
	group     string
	region    string
	prefix    string
	pattern   string
	pageLimit int32
}

// errStop ends a pagination early without error.
var errStop = errors.New("stop")

// pages calls fn with each page of events in [start, end] (end zero: no
// end), in time order.
func (f *filter) pages(ctx context.Context, start, end time.Time, fn func([]types.FilteredLogEvent) error) error {
	in := &cloudwatchlogs.FilterLogEventsInput{
		LogGroupName: aws.String(f.group),
		StartTime:    aws.Int64(start.UnixMilli()),
	}
	endMs := int64(-1)
	if !end.IsZero() {
		// FilterLogEvents documents endTime as inclusive, GetLogEvents as
		// exclusive, and stores differ; ask for one millisecond more and
		// drop anything past the end here, so --end is inclusive anywhere.
		endMs = end.UnixMilli()
		in.EndTime = aws.Int64(endMs + 1)
	}
	if f.prefix != "" {
		in.LogStreamNamePrefix = aws.String(f.prefix)
	}
	if f.pattern != "" {
		in.FilterPattern = aws.String(f.pattern)
	}
	if f.pageLimit > 0 {
		in.Limit = aws.Int32(f.pageLimit)
	}
	for {
		if err := f.limiter.Wait(ctx); err != nil {
			return err
		}
		out, err := f.api.FilterLogEvents(ctx, in)
		if err != nil && f.prefix != "" && noStreams(err) {
			// CloudWatch may answer a prefix no stream has (yet) with
			// "log stream does not exist": for a query that is simply no
			// lines, and --follow keeps waiting for the pod to log.
			return nil
		}
		if err != nil {
			return describe(err, "filtering log events in "+f.group, f.group, f.region)
		}
		// The service returns events in time order; the stable sort only
		// guards the page against a store that interleaves otherwise.
		slices.SortStableFunc(out.Events, func(a, b types.FilteredLogEvent) int {
			return compareInt64(aws.ToInt64(a.Timestamp), aws.ToInt64(b.Timestamp))
		})
		evs := out.Events
		if endMs >= 0 {
			evs = slices.DeleteFunc(evs, func(e types.FilteredLogEvent) bool { return aws.ToInt64(e.Timestamp) > endMs })
		}
		if err := fn(evs); err != nil {
			return err
		}
		next := aws.ToString(out.NextToken)
		if next == "" || next == aws.ToString(in.NextToken) {
			return nil
		}
		in.NextToken = aws.String(next)
	}
}

// transient reports errors worth another poll: throttling, 5xx and
// connection failures, as the SDK's retryer classifies them.
func transient(err error) bool { return awscfg.Classify(err).Transient() }

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// list prints the window's events once.
func (f *filter) list(ctx context.Context, win window, limit int, keep func(event) bool, p *printer) error {
	n := 0
	err := f.pages(ctx, win.start, win.end, func(evs []types.FilteredLogEvent) error {
		for _, raw := range evs {
			e := decodeEvent(raw)
			if !keep(e) {
				continue
			}
			if err := p.print(e); err != nil {
				return err
			}
			if n++; limit > 0 && n >= limit {
				return errStop
			}
		}
		return p.flush()
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return errors.Join(err, p.flush())
}

// follower polls a filter for new events. Each poll re-reads from a little
// before the newest event printed (the overlap, at least the largest
// ingestion delay seen), because CloudWatch may ingest an event after
// events with later timestamps; event ids already printed inside the
// overlap are remembered and skipped, so nothing is printed twice.
type follower struct {
	filter  *filter
	after   func(time.Duration) <-chan time.Time
	polled  func()
	poll    time.Duration
	overlap time.Duration
	stderr  io.Writer
}

func (fw *follower) run(ctx context.Context, start time.Time, keep func(event) bool, p *printer) error {
	from := start
	seen := map[string]int64{} // event id -> timestamp (ms), for ids at or after from
	var newest int64           // newest event timestamp seen (ms)
	var maxLag time.Duration   // largest ingestion delay seen
	for {
		err := fw.filter.pages(ctx, from, time.Time{}, func(evs []types.FilteredLogEvent) error {
			for _, raw := range evs {
				id, ts := aws.ToString(raw.EventId), aws.ToInt64(raw.Timestamp)
				if _, dup := seen[id]; dup {
					continue
				}
				seen[id] = ts
				newest = max(newest, ts)
				maxLag = max(maxLag, time.Duration(aws.ToInt64(raw.IngestionTime)-ts)*time.Millisecond)
				if e := decodeEvent(raw); keep(e) {
					if err := p.print(e); err != nil {
						return err
					}
				}
			}
			return p.flush()
		})
		switch {
		case err == nil:
		case ctx.Err() == nil && transient(err):
			// A blip outlasted the SDK's retries: the window is unchanged,
			// so the next poll reads what this one missed.
			fmt.Fprintf(fw.stderr, "logship query: %v; retrying in %s\n", oneLine{err}, fw.poll)
		default:
			return err
		}
		if newest > 0 {
			next := time.UnixMilli(newest).Add(-max(fw.overlap, maxLag))
			if next.After(from) {
				from = next
				cut := from.UnixMilli()
				for id, ts := range seen {
					if ts < cut {
						delete(seen, id)
					}
				}
			}
		}
		fw.polled()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-fw.after(fw.poll):
		}
	}
}
