package awsemu

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
)

// msgOfBytes returns a message of exactly n UTF-8 bytes made mostly of
// two-byte runes, so a limit counted in characters instead of bytes fails.
func msgOfBytes(n int) string {
	s := strings.Repeat("é", n/2)
	if n%2 == 1 {
		s += "x"
	}
	return s
}

func ev(ts int64, msg string) types.InputLogEvent {
	return types.InputLogEvent{Timestamp: aws.Int64(ts), Message: aws.String(msg)}
}

func manyEvents(n int, ts int64) []types.InputLogEvent {
	out := make([]types.InputLogEvent, n)
	for i := range out {
		out[i] = ev(ts, "x")
	}
	return out
}

const (
	dayMs  = int64(24 * time.Hour / time.Millisecond)
	hourMs = int64(time.Hour / time.Millisecond)
)

// putCase is one PutLogEvents call against a fresh group and stream.
type putCase struct {
	name      string
	retention int32 // days; 0 leaves the group without a policy
	events    func(now int64) []types.InputLogEvent
	wantCode  string // "" for success
	wantMsg   string // exact message, when the service's wording is known
	wantIn    string // substring of the message otherwise
	// On success: the rejected-events info and how many events were stored.
	wantRejected *types.RejectedLogEventsInfo
	wantStored   int
	// exactClock marks cases on a limit's exact boundary, which need the
	// emulator's pinned clock (a real server's clock moves between the
	// client computing timestamps and the server checking them).
	exactClock bool
}

var putLogEventsCases = []putCase{
	{name: "one_event", events: func(now int64) []types.InputLogEvent { return []types.InputLogEvent{ev(now, "hello")} }, wantStored: 1},
	{
		name: "batch_exactly_1048576_bytes",
		events: func(now int64) []types.InputLogEvent {
			// 2 events: 2*(524262+26) = 1048576.
			return []types.InputLogEvent{ev(now, msgOfBytes(524262)), ev(now, msgOfBytes(524262))}
		},
		wantStored: 2,
	},
	{
		name: "batch_one_byte_over",
		events: func(now int64) []types.InputLogEvent {
			return []types.InputLogEvent{ev(now, msgOfBytes(524262)), ev(now, msgOfBytes(524263))}
		},
		wantCode: "InvalidParameterException",
		wantMsg:  "Upload too large: 1048577 bytes exceeds limit of 1048576",
	},
	{
		name: "batch_over_by_per_event_overhead",
		events: func(now int64) []types.InputLogEvent {
			// 10,000 events of 79 bytes are 790,000 bytes of text but
			// 1,050,000 bytes once the 26-byte overhead is counted.
			out := make([]types.InputLogEvent, 10000)
			for i := range out {
				out[i] = ev(now, msgOfBytes(79))
			}
			return out
		},
		wantCode: "InvalidParameterException",
		wantMsg:  "Upload too large: 1050000 bytes exceeds limit of 1048576",
	},
	{name: "10000_events", events: func(now int64) []types.InputLogEvent { return manyEvents(10000, now) }, wantStored: 10000},
	{
		name:     "10001_events",
		events:   func(now int64) []types.InputLogEvent { return manyEvents(10001, now) },
		wantCode: "InvalidParameterException",
		wantIn:   "at 'logEvents' failed to satisfy constraint: Member must have length less than or equal to 10000",
	},
	{
		name:     "no_events",
		events:   func(int64) []types.InputLogEvent { return []types.InputLogEvent{} },
		wantCode: "InvalidParameterException",
		wantMsg:  "1 validation error detected: Value '[]' at 'logEvents' failed to satisfy constraint: Member must have length greater than or equal to 1",
	},
	{
		name:       "event_at_max_size",
		events:     func(now int64) []types.InputLogEvent { return []types.InputLogEvent{ev(now, msgOfBytes(1048550))} },
		wantStored: 1,
	},
	{
		name:     "event_one_byte_over_max_size",
		events:   func(now int64) []types.InputLogEvent { return []types.InputLogEvent{ev(now, msgOfBytes(1048551))} },
		wantCode: "InvalidParameterException",
		wantMsg:  "Log event too large: 1048577 bytes exceeds limit of 1048576",
	},
	{
		name:     "empty_message",
		events:   func(now int64) []types.InputLogEvent { return []types.InputLogEvent{ev(now, "a"), ev(now, "")} },
		wantCode: "InvalidParameterException",
		wantMsg:  "1 validation error detected: Value '' at 'logEvents.2.member.message' failed to satisfy constraint: Member must have length greater than or equal to 1",
	},
	{
		name:     "unordered",
		events:   func(now int64) []types.InputLogEvent { return []types.InputLogEvent{ev(now, "b"), ev(now-1, "a")} },
		wantCode: "InvalidParameterException",
		wantMsg:  "Log events in a single PutLogEvents request must be in chronological order.",
	},
	{
		name:       "equal_timestamps_are_ordered",
		events:     func(now int64) []types.InputLogEvent { return []types.InputLogEvent{ev(now, "a"), ev(now, "b")} },
		wantStored: 2,
	},
	{
		name: "span_exactly_24h",
		events: func(now int64) []types.InputLogEvent {
			return []types.InputLogEvent{ev(now-dayMs, "a"), ev(now, "b")}
		},
		wantStored: 2,
	},
	{
		name: "span_24h_plus_1ms",
		events: func(now int64) []types.InputLogEvent {
			return []types.InputLogEvent{ev(now-dayMs-1, "a"), ev(now, "b")}
		},
		wantCode: "InvalidParameterException",
		wantMsg:  "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.",
	},
	{
		name: "too_old",
		events: func(now int64) []types.InputLogEvent {
			// 14 days + 1 h, 14 days + 1 h - 1 ms (both too old), 14 days - 1 h (kept).
			old := now - 14*dayMs - hourMs
			return []types.InputLogEvent{ev(old, "a"), ev(old+1, "b"), ev(old+2*hourMs, "c")}
		},
		wantRejected: &types.RejectedLogEventsInfo{TooOldLogEventEndIndex: aws.Int32(2)},
		wantStored:   1,
	},
	{
		name: "exactly_14_days_old_is_kept",
		events: func(now int64) []types.InputLogEvent {
			return []types.InputLogEvent{ev(now-14*dayMs-1, "a"), ev(now-14*dayMs, "b")}
		},
		wantRejected: &types.RejectedLogEventsInfo{TooOldLogEventEndIndex: aws.Int32(1)},
		wantStored:   1,
		exactClock:   true,
	},
	{
		name: "too_new",
		events: func(now int64) []types.InputLogEvent {
			return []types.InputLogEvent{ev(now, "a"), ev(now+3*hourMs, "b")}
		},
		wantRejected: &types.RejectedLogEventsInfo{TooNewLogEventStartIndex: aws.Int32(1)},
		wantStored:   1,
	},
	{
		name: "exactly_2h_ahead_is_kept",
		events: func(now int64) []types.InputLogEvent {
			return []types.InputLogEvent{ev(now+2*hourMs, "a"), ev(now+2*hourMs+1, "b")}
		},
		wantRejected: &types.RejectedLogEventsInfo{TooNewLogEventStartIndex: aws.Int32(1)},
		wantStored:   1,
		exactClock:   true,
	},
	{
		name:      "older_than_retention",
		retention: 1,
		events: func(now int64) []types.InputLogEvent {
			return []types.InputLogEvent{ev(now-dayMs-hourMs, "a"), ev(now-hourMs, "b")}
		},
		wantRejected: &types.RejectedLogEventsInfo{ExpiredLogEventEndIndex: aws.Int32(1)},
		wantStored:   1,
	},
	{
		name: "all_rejected_still_succeeds",
		events: func(now int64) []types.InputLogEvent {
			return []types.InputLogEvent{ev(now+3*hourMs, "a")}
		},
		wantRejected: &types.RejectedLogEventsInfo{TooNewLogEventStartIndex: aws.Int32(0)},
		wantStored:   0,
	},
}

// runPutLogEventsCases runs the table against any CloudWatch Logs endpoint;
// now is that endpoint's clock.
func runPutLogEventsCases(t *testing.T, client *cloudwatchlogs.Client, now func() time.Time, cases []putCase) {
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			group := fmt.Sprintf("/awsemu-test/limits/%d-%d", time.Now().UnixNano(), i)
			stream := "s"
			mustCreate(ctx, t, client, group, stream)
			t.Cleanup(func() {
				_, _ = client.DeleteLogGroup(context.Background(), &cloudwatchlogs.DeleteLogGroupInput{LogGroupName: aws.String(group)})
			})
			if tc.retention > 0 {
				if _, err := client.PutRetentionPolicy(ctx, &cloudwatchlogs.PutRetentionPolicyInput{
					LogGroupName: aws.String(group), RetentionInDays: aws.Int32(tc.retention),
				}); err != nil {
					t.Fatalf("PutRetentionPolicy: %v", err)
				}
			}
			out, err := client.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{
				LogGroupName:  aws.String(group),
				LogStreamName: aws.String(stream),
				LogEvents:     tc.events(now().UnixMilli()),
			})
			if tc.wantCode != "" {
				code, msg, ok := apiError(err)
				if !ok {
					t.Fatalf("PutLogEvents error = %v, want API error %s", err, tc.wantCode)
				}
				if code != tc.wantCode {
					t.Errorf("code = %q, want %q (message %q)", code, tc.wantCode, msg)
				}
				if tc.wantMsg != "" && msg != tc.wantMsg {
					t.Errorf("message = %q, want %q", msg, tc.wantMsg)
				}
				if tc.wantIn != "" && !strings.Contains(msg, tc.wantIn) {
					t.Errorf("message = %q, want it to contain %q", msg, tc.wantIn)
				}
				if n := countEvents(ctx, t, client, group, stream); n != 0 {
					t.Errorf("rejected call stored %d events", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("PutLogEvents: %v", err)
			}
			checkRejected(t, out.RejectedLogEventsInfo, tc.wantRejected)
			if n := countEvents(ctx, t, client, group, stream); n != tc.wantStored {
				t.Errorf("stored %d events, want %d", n, tc.wantStored)
			}
		})
	}
}

func checkRejected(t *testing.T, got, want *types.RejectedLogEventsInfo) {
	t.Helper()
	str := func(r *types.RejectedLogEventsInfo) string {
		if r == nil {
			return "<nil>"
		}
		f := func(p *int32) string {
			if p == nil {
				return "-"
			}
			return fmt.Sprint(*p)
		}
		return fmt.Sprintf("tooOldEnd=%s expiredEnd=%s tooNewStart=%s",
			f(r.TooOldLogEventEndIndex), f(r.ExpiredLogEventEndIndex), f(r.TooNewLogEventStartIndex))
	}
	if str(got) != str(want) {
		t.Errorf("rejectedLogEventsInfo = %s, want %s", str(got), str(want))
	}
}

func mustCreate(ctx context.Context, t *testing.T, client *cloudwatchlogs.Client, group string, streams ...string) {
	t.Helper()
	if _, err := client.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(group)}); err != nil {
		t.Fatalf("CreateLogGroup %s: %v", group, err)
	}
	for _, s := range streams {
		if _, err := client.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{
			LogGroupName: aws.String(group), LogStreamName: aws.String(s),
		}); err != nil {
			t.Fatalf("CreateLogStream %s/%s: %v", group, s, err)
		}
	}
}

// countEvents reads a stream through GetLogEvents pages, so it works against
// any backend.
func countEvents(ctx context.Context, t *testing.T, client *cloudwatchlogs.Client, group, stream string) int {
	t.Helper()
	n := 0
	p := cloudwatchlogs.NewGetLogEventsPaginator(client, &cloudwatchlogs.GetLogEventsInput{
		LogGroupName: aws.String(group), LogStreamName: aws.String(stream), StartFromHead: aws.Bool(true),
	}, func(o *cloudwatchlogs.GetLogEventsPaginatorOptions) { o.StopOnDuplicateToken = true })
	for pages := 0; p.HasMorePages(); pages++ {
		if pages > 100 {
			t.Fatalf("GetLogEvents pagination did not stop")
		}
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("GetLogEvents: %v", err)
		}
		n += len(out.Events)
	}
	return n
}

func TestPutLogEventsLimits(t *testing.T) {
	t.Parallel()
	_, url := startEmu(t, Options{})
	runPutLogEventsCases(t, newLogsClient(url, 1), func() time.Time { return testNow }, putLogEventsCases)
}

func TestPutLogEventsStoresInOrderAndIgnoresSequenceToken(t *testing.T) {
	t.Parallel()
	e, url := startEmu(t, Options{})
	client := newLogsClient(url, 1)
	ctx := testContext(t)
	mustCreate(ctx, t, client, "g", "s")
	now := testNow.UnixMilli()
	for _, batch := range [][]types.InputLogEvent{
		{ev(now-10, "b"), ev(now, "d")},
		{ev(now-20, "a"), ev(now-5, "c")}, // older batch after a newer one is fine
	} {
		if _, err := client.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{
			LogGroupName: aws.String("g"), LogStreamName: aws.String("s"), LogEvents: batch,
			SequenceToken: aws.String("bogus-token-the-service-ignores"),
		}); err != nil {
			t.Fatalf("PutLogEvents: %v", err)
		}
	}
	var got []string
	for _, e := range e.Events("g", "s") {
		got = append(got, e.Message)
		if !e.IngestionTime.Equal(testNow) {
			t.Errorf("ingestion time %v, want the emulator clock %v", e.IngestionTime, testNow)
		}
	}
	if strings.Join(got, "") != "abcd" {
		t.Errorf("stored order %q, want abcd", got)
	}
}

func TestLogsResourceErrors(t *testing.T) {
	t.Parallel()
	e, url := startEmu(t, Options{})
	runResourceErrorCases(t, newLogsClient(url, 1), testNow, func(string) (string, bool) { return "", false })
	// Refusals are counted by operation and error code.
	for key, want := range map[string]int{
		"PutLogEvents:ResourceNotFoundException":         2,
		"CreateLogStream:ResourceAlreadyExistsException": 1,
		"PutLogEvents:InvalidParameterException":         0,
	} {
		if got := e.Count(key); got != want {
			t.Errorf("Count(%q) = %d, want %d", key, got, want)
		}
	}
}

// runResourceErrorCases checks error codes and messages against any
// backend; skip names cases that backend is known to answer differently.
func runResourceErrorCases(t *testing.T, client *cloudwatchlogs.Client, clock time.Time, skip func(name string) (string, bool)) {
	ctx := testContext(t)
	mustCreate(ctx, t, client, "exists", "stream")
	now := clock.UnixMilli()
	tests := []struct {
		name     string
		call     func() error
		wantCode string
		wantMsg  string
	}{
		{"put_missing_group", func() error {
			_, err := client.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String("nope"), LogStreamName: aws.String("s"), LogEvents: []types.InputLogEvent{ev(now, "x")}})
			return err
		}, "ResourceNotFoundException", "The specified log group does not exist."},
		{"put_missing_stream", func() error {
			_, err := client.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String("exists"), LogStreamName: aws.String("nope"), LogEvents: []types.InputLogEvent{ev(now, "x")}})
			return err
		}, "ResourceNotFoundException", "The specified log stream does not exist."},
		{"create_stream_missing_group", func() error {
			_, err := client.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String("nope"), LogStreamName: aws.String("s")})
			return err
		}, "ResourceNotFoundException", "The specified log group does not exist."},
		{"create_group_twice", func() error {
			_, err := client.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("exists")})
			return err
		}, "ResourceAlreadyExistsException", "The specified log group already exists"},
		{"create_stream_twice", func() error {
			_, err := client.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String("exists"), LogStreamName: aws.String("stream")})
			return err
		}, "ResourceAlreadyExistsException", "The specified log stream already exists"},
		{"delete_missing_stream", func() error {
			_, err := client.DeleteLogStream(ctx, &cloudwatchlogs.DeleteLogStreamInput{LogGroupName: aws.String("exists"), LogStreamName: aws.String("nope")})
			return err
		}, "ResourceNotFoundException", "The specified log stream does not exist."},
		{"delete_missing_group", func() error {
			_, err := client.DeleteLogGroup(ctx, &cloudwatchlogs.DeleteLogGroupInput{LogGroupName: aws.String("nope")})
			return err
		}, "ResourceNotFoundException", "The specified log group does not exist."},
		{"get_missing_stream", func() error {
			_, err := client.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("exists"), LogStreamName: aws.String("nope")})
			return err
		}, "ResourceNotFoundException", "The specified log stream does not exist."},
		{"filter_missing_group", func() error {
			_, err := client.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("nope")})
			return err
		}, "ResourceNotFoundException", "The specified log group does not exist."},
		{"retention_not_in_enum", func() error {
			_, err := client.PutRetentionPolicy(ctx, &cloudwatchlogs.PutRetentionPolicyInput{LogGroupName: aws.String("exists"), RetentionInDays: aws.Int32(2)})
			return err
		}, "InvalidParameterException", "1 validation error detected: Value '2' at 'retentionInDays' failed to satisfy constraint: " + retentionEnumMessage},
		{"bad_group_name", func() error {
			_, err := client.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("has space")})
			return err
		}, "InvalidParameterException", `1 validation error detected: Value 'has space' at 'logGroupName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\.\-_/#A-Za-z0-9]+`},
		{"stream_name_with_colon", func() error {
			_, err := client.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String("exists"), LogStreamName: aws.String("a:b")})
			return err
		}, "InvalidParameterException", "1 validation error detected: Value 'a:b' at 'logStreamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [^:*]*"},
		{"order_by_last_event_time_with_prefix", func() error {
			_, err := client.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String("exists"), OrderBy: types.OrderByLastEventTime, LogStreamNamePrefix: aws.String("s")})
			return err
		}, "InvalidParameterException", "Cannot order by LastEventTime with a logStreamNamePrefix."},
	}
	for _, tc := range tests {
		if why, ok := skip(tc.name); ok {
			t.Logf("not compared: %s: %s", tc.name, why)
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			code, msg, ok := apiError(tc.call())
			if !ok || code != tc.wantCode || msg != tc.wantMsg {
				t.Errorf("got (%q, %q), want (%q, %q)", code, msg, tc.wantCode, tc.wantMsg)
			}
		})
	}
}

func TestDescribePagination(t *testing.T) {
	t.Parallel()
	e, url := startEmu(t, Options{})
	client := newLogsClient(url, 1)
	ctx := testContext(t)
	var want []string
	for i := 0; i < 7; i++ {
		name := fmt.Sprintf("/app/%02d", i)
		want = append(want, name)
		mustCreate(ctx, t, client, name)
	}
	mustCreate(ctx, t, client, "/other")
	if _, err := client.PutRetentionPolicy(ctx, &cloudwatchlogs.PutRetentionPolicyInput{LogGroupName: aws.String("/app/03"), RetentionInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	var got []string
	var retention int32
	p := cloudwatchlogs.NewDescribeLogGroupsPaginator(client, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String("/app/"), Limit: aws.Int32(3)})
	for pages := 0; p.HasMorePages(); pages++ {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("DescribeLogGroups: %v", err)
		}
		if len(out.LogGroups) > 3 {
			t.Errorf("page of %d groups, limit 3", len(out.LogGroups))
		}
		for _, g := range out.LogGroups {
			got = append(got, *g.LogGroupName)
			if *g.LogGroupName == "/app/03" && g.RetentionInDays != nil {
				retention = *g.RetentionInDays
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("groups = %v, want %v", got, want)
	}
	if retention != 7 {
		t.Errorf("retention of /app/03 = %d, want 7", retention)
	}
	if d, ok := e.RetentionDays("/app/03"); !ok || d != 7 {
		t.Errorf("RetentionDays = %d, %v", d, ok)
	}

	// Streams ordered by last event time, newest first.
	mustCreate(ctx, t, client, "/streams", "old", "new", "mid", "empty")
	now := testNow.UnixMilli()
	for name, ts := range map[string]int64{"old": now - 3000, "mid": now - 2000, "new": now - 1000} {
		if _, err := client.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String("/streams"), LogStreamName: aws.String(name), LogEvents: []types.InputLogEvent{ev(ts, name)}}); err != nil {
			t.Fatal(err)
		}
	}
	got = nil
	sp := cloudwatchlogs.NewDescribeLogStreamsPaginator(client, &cloudwatchlogs.DescribeLogStreamsInput{
		LogGroupName: aws.String("/streams"), OrderBy: types.OrderByLastEventTime, Descending: aws.Bool(true), Limit: aws.Int32(2),
	})
	for sp.HasMorePages() {
		out, err := sp.NextPage(ctx)
		if err != nil {
			t.Fatalf("DescribeLogStreams: %v", err)
		}
		for _, s := range out.LogStreams {
			got = append(got, *s.LogStreamName)
			if *s.LogStreamName == "new" && (s.LastEventTimestamp == nil || *s.LastEventTimestamp != now-1000) {
				t.Errorf("new.lastEventTimestamp = %v", s.LastEventTimestamp)
			}
		}
	}
	if fmt.Sprint(got) != "[new mid old empty]" {
		t.Errorf("streams by last event time desc = %v", got)
	}
}

func TestGetLogEventsTokens(t *testing.T) {
	t.Parallel()
	_, url := startEmu(t, Options{})
	client := newLogsClient(url, 1)
	ctx := testContext(t)
	mustCreate(ctx, t, client, "g", "s")
	now := testNow.UnixMilli()
	var batch []types.InputLogEvent
	for i := 0; i < 25; i++ {
		batch = append(batch, ev(now-int64(25-i), fmt.Sprintf("m%02d", i)))
	}
	if _, err := client.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s"), LogEvents: batch}); err != nil {
		t.Fatal(err)
	}
	msgs := func(out *cloudwatchlogs.GetLogEventsOutput) string {
		var s []string
		for _, e := range out.Events {
			s = append(s, *e.Message)
		}
		return strings.Join(s, ",")
	}
	get := func(in cloudwatchlogs.GetLogEventsInput) *cloudwatchlogs.GetLogEventsOutput {
		t.Helper()
		in.LogGroupName, in.LogStreamName = aws.String("g"), aws.String("s")
		out, err := client.GetLogEvents(ctx, &in)
		if err != nil {
			t.Fatalf("GetLogEvents: %v", err)
		}
		return out
	}

	// Default (startFromHead false): the newest page.
	tail := get(cloudwatchlogs.GetLogEventsInput{Limit: aws.Int32(3)})
	if msgs(tail) != "m22,m23,m24" {
		t.Errorf("tail = %s", msgs(tail))
	}
	// Backward from there.
	prev := get(cloudwatchlogs.GetLogEventsInput{Limit: aws.Int32(3), NextToken: tail.NextBackwardToken})
	if msgs(prev) != "m19,m20,m21" {
		t.Errorf("page before tail = %s", msgs(prev))
	}
	// Forward from the tail: nothing new, and the same token comes back.
	fwd := get(cloudwatchlogs.GetLogEventsInput{Limit: aws.Int32(3), NextToken: tail.NextForwardToken})
	if len(fwd.Events) != 0 || *fwd.NextForwardToken != *tail.NextForwardToken {
		t.Errorf("forward at end = %q token %q, want nothing and token %q", msgs(fwd), *fwd.NextForwardToken, *tail.NextForwardToken)
	}
	// Time window: [now-5, now-2).
	win := get(cloudwatchlogs.GetLogEventsInput{StartFromHead: aws.Bool(true), StartTime: aws.Int64(now - 5), EndTime: aws.Int64(now - 2)})
	if msgs(win) != "m20,m21,m22" {
		t.Errorf("window = %s", msgs(win))
	}
	// Paginating from the head sees every event once, in order.
	var all []string
	p := cloudwatchlogs.NewGetLogEventsPaginator(client, &cloudwatchlogs.GetLogEventsInput{
		LogGroupName: aws.String("g"), LogStreamName: aws.String("s"), StartFromHead: aws.Bool(true), Limit: aws.Int32(10),
	}, func(o *cloudwatchlogs.GetLogEventsPaginatorOptions) {
		// The service answers the same forward token at the end of a
		// stream; this option is how SDK paginators stop on it.
		o.StopOnDuplicateToken = true
	})
	for pages := 0; p.HasMorePages(); pages++ {
		if pages > 10 {
			t.Fatal("pagination did not stop")
		}
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m := msgs(out); m != "" {
			all = append(all, m)
		}
	}
	if want := strings.Join(func() []string {
		var s []string
		for i := 0; i < 25; i++ {
			s = append(s, fmt.Sprintf("m%02d", i))
		}
		return s
	}(), ","); strings.Join(all, ",") != want {
		t.Errorf("paginated = %s", strings.Join(all, ","))
	}
	if _, err := client.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s"), NextToken: aws.String("garbage")}); err == nil {
		t.Error("garbage token accepted")
	}
}

func TestFilterLogEvents(t *testing.T) {
	t.Parallel()
	_, url := startEmu(t, Options{})
	client := newLogsClient(url, 1)
	ctx := testContext(t)
	group := "/aws/containerinsights/test/application"
	now := seedK8sLogs(ctx, t, client, group)

	collect := func(t *testing.T, in cloudwatchlogs.FilterLogEventsInput) ([]types.FilteredLogEvent, int) {
		t.Helper()
		in.LogGroupName = aws.String(group)
		var out []types.FilteredLogEvent
		pages := 0
		p := cloudwatchlogs.NewFilterLogEventsPaginator(client, &in)
		for p.HasMorePages() {
			if pages++; pages > 50 {
				t.Fatal("pagination did not stop")
			}
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("FilterLogEvents: %v", err)
			}
			out = append(out, page.Events...)
		}
		return out, pages
	}

	tests := []struct {
		name      string
		in        cloudwatchlogs.FilterLogEventsInput
		want      int
		wantPages int // 0: don't check
	}{
		{"all_paginated_by_4", cloudwatchlogs.FilterLogEventsInput{Limit: aws.Int32(4)}, 15, 4},
		{"namespace_shop", cloudwatchlogs.FilterLogEventsInput{FilterPattern: aws.String(`{ $.kubernetes.namespace_name = "shop" }`)}, 10, 1},
		{"pod_wildcard", cloudwatchlogs.FilterLogEventsInput{FilterPattern: aws.String(`{ $.kubernetes.pod_name = "web-*" }`), Limit: aws.Int32(3)}, 10, 4},
		{"and_numeric", cloudwatchlogs.FilterLogEventsInput{FilterPattern: aws.String(`{ ($.kubernetes.namespace_name = "shop") && ($.status >= 300) }`)}, 6, 0},
		{"or", cloudwatchlogs.FilterLogEventsInput{FilterPattern: aws.String(`{ $.kubernetes.namespace_name = "infra" || $.status = 400 }`)}, 5 + 2, 0},
		{"not_equal", cloudwatchlogs.FilterLogEventsInput{FilterPattern: aws.String(`{ $.kubernetes.namespace_name != "shop" }`)}, 5, 0},
		{"stream_names", cloudwatchlogs.FilterLogEventsInput{LogStreamNames: []string{"db-0_infra_pg", "web-1_shop_app"}}, 10, 0},
		{"stream_prefix", cloudwatchlogs.FilterLogEventsInput{LogStreamNamePrefix: aws.String("web-")}, 10, 0},
		{"time_range", cloudwatchlogs.FilterLogEventsInput{StartTime: aws.Int64(now - 1000 + 10), EndTime: aws.Int64(now - 1000 + 30)}, 6, 0},
		{"term", cloudwatchlogs.FilterLogEventsInput{FilterPattern: aws.String(`"ERROR=true"`)}, 9, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, pages := collect(t, tc.in)
			if len(got) != tc.want {
				t.Errorf("%d events, want %d", len(got), tc.want)
			}
			if tc.wantPages != 0 && pages != tc.wantPages {
				t.Errorf("%d pages, want %d", pages, tc.wantPages)
			}
			seen := map[string]bool{}
			for i, e := range got {
				if seen[*e.EventId] {
					t.Errorf("event %s returned twice", *e.EventId)
				}
				seen[*e.EventId] = true
				if i > 0 && *e.Timestamp < *got[i-1].Timestamp {
					t.Errorf("event %d out of time order", i)
				}
			}
		})
	}

	for _, bad := range []string{`[ip, user]`, `{ $.a = "x" && $.b = 1 || $.c = 2 }`, `{ $.a = `, `?ERROR WARN`} {
		_, err := client.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(group), FilterPattern: aws.String(bad)})
		if code, _, _ := apiError(err); code != "InvalidParameterException" {
			t.Errorf("pattern %q: error %v, want InvalidParameterException", bad, err)
		}
	}
}

// TestRequestIDOnEveryAnswer checks x-amzn-RequestId on successes, service
// errors, injected faults and unknown operations alike.
func TestRequestIDOnEveryAnswer(t *testing.T) {
	t.Parallel()
	e, url := startEmu(t, Options{})
	e.SetFault("DescribeLogStreams", Fault{ThrottleEvery: 1})
	tests := []struct {
		target, body string
		wantStatus   int
	}{
		{"CreateLogGroup", `{"logGroupName":"g"}`, http.StatusOK},
		{"CreateLogGroup", `{"logGroupName":"g"}`, http.StatusBadRequest},
		{"PutLogEvents", `{"logGroupName":"nope","logStreamName":"s","logEvents":[{"timestamp":1,"message":"x"}]}`, http.StatusBadRequest},
		{"DescribeLogStreams", `{"logGroupName":"g"}`, http.StatusBadRequest},
		{"NoSuchOperation", `{}`, http.StatusBadRequest},
		{"DescribeLogGroups", `{not json`, http.StatusBadRequest},
	}
	for _, tc := range tests {
		req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Amz-Target", "Logs_20140328."+tc.target)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.wantStatus {
			t.Errorf("%s: status %d, want %d", tc.target, resp.StatusCode, tc.wantStatus)
		}
		if resp.Header.Get("x-amzn-RequestId") == "" {
			t.Errorf("%s (%d): no x-amzn-RequestId", tc.target, resp.StatusCode)
		}
	}
}

func TestWaitEvents(t *testing.T) {
	t.Parallel()
	e, url := startEmu(t, Options{})
	client := newLogsClient(url, 1)
	ctx := testContext(t)
	mustCreate(ctx, t, client, "g", "s")
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < 3; i++ {
			if _, err := client.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{
				LogGroupName: aws.String("g"), LogStreamName: aws.String("s"),
				LogEvents: []types.InputLogEvent{ev(testNow.UnixMilli(), fmt.Sprint(i))},
			}); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	evs, err := e.WaitEvents(ctx, "g", "s", 3)
	if err != nil || len(evs) != 3 {
		t.Fatalf("WaitEvents = %d events, %v", len(evs), err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// A condition that never holds ends with the context.
	short, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.WaitEvents(short, "g", "s", 4); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitEvents on a cancelled context = %v", err)
	}
}

// seedK8sLogs fills group with 15 fluent-bit-shaped JSON events in three
// pod streams (two in namespace shop, one in infra), timestamps interleaved
// across streams. It returns the clock in milliseconds.
func seedK8sLogs(ctx context.Context, t *testing.T, client *cloudwatchlogs.Client, group string) int64 {
	t.Helper()
	streams := []string{"web-1_shop_app", "web-2_shop_app", "db-0_infra_pg"}
	mustCreate(ctx, t, client, group, streams...)
	now := testNow.UnixMilli()
	for si, s := range streams {
		var batch []types.InputLogEvent
		pod, ns, _ := strings.Cut(s, "_")
		ns, _, _ = strings.Cut(ns, "_")
		for i := 0; i < 5; i++ {
			msg := fmt.Sprintf(`{"log":"line %d ERROR=%v","stream":"stdout","status":%d,"kubernetes":{"pod_name":%q,"namespace_name":%q}}`,
				i, i%2 == 0, 200+100*(i%3), pod, ns)
			batch = append(batch, ev(now-1000+int64(i*10+si), msg))
		}
		if _, err := client.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(group), LogStreamName: aws.String(s), LogEvents: batch}); err != nil {
			t.Fatal(err)
		}
	}
	return now
}

// BenchmarkPutLogEvents measures the emulator's ingest rate through the real
// SDK client, so agent benchmarks can tell whether it is their bottleneck.
func BenchmarkPutLogEvents(b *testing.B) {
	_, url := StartServer(b, Options{})
	client := newLogsClient(url, 1)
	ctx := context.Background()
	if _, err := client.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("g")}); err != nil {
		b.Fatal(err)
	}
	if _, err := client.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s")}); err != nil {
		b.Fatal(err)
	}
	batch := make([]types.InputLogEvent, 1000)
	msg := strings.Repeat("x", 200)
	b.SetBytes(int64(len(batch) * (len(msg) + eventOverhead)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now := time.Now().UnixMilli()
		for j := range batch {
			batch[j] = ev(now, msg)
		}
		if _, err := client.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s"), LogEvents: batch}); err != nil {
			b.Fatal(err)
		}
	}
}
