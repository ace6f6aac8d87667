package query

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/smithy-go"
)

// recordingAPI answers FilterLogEvents from scripted pages and records the
// requests.
type recordingAPI struct {
	logsAPI
	pages []*cloudwatchlogs.FilterLogEventsOutput
	err   error // answered instead of pages when set
	reqs  []cloudwatchlogs.FilterLogEventsInput
}

func (r *recordingAPI) FilterLogEvents(_ context.Context, in *cloudwatchlogs.FilterLogEventsInput, _ ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.FilterLogEventsOutput, error) {
	r.reqs = append(r.reqs, *in)
	if r.err != nil {
		return nil, r.err
	}
	if len(r.reqs) > len(r.pages) {
		return nil, fmt.Errorf("unexpected call %d", len(r.reqs))
	}
	return r.pages[len(r.reqs)-1], nil
}

func page(next string, ts ...int64) *cloudwatchlogs.FilterLogEventsOutput {
	out := &cloudwatchlogs.FilterLogEventsOutput{}
	if next != "" {
		out.NextToken = aws.String(next)
	}
	for _, t := range ts {
		out.Events = append(out.Events, types.FilteredLogEvent{
			Timestamp: aws.Int64(t), EventId: aws.String(fmt.Sprint(t)), LogStreamName: aws.String("s"),
			Message: aws.String(fmt.Sprintf(`{"log":"at %d","stream":"stdout","kubernetes":{"pod_name":"p","namespace_name":"n","container_name":"c"}}`, t)),
		})
	}
	return out
}

func TestFilterRequests(t *testing.T) {
	t.Parallel()
	start, end := time.UnixMilli(1_000), time.UnixMilli(5_000)
	tests := []struct {
		name      string
		pages     []*cloudwatchlogs.FilterLogEventsOutput
		wantCalls int
		wantTimes string
	}{
		{"follows_tokens", []*cloudwatchlogs.FilterLogEventsOutput{page("a", 1000, 2000), page("b"), page("", 3000, 5000)}, 3, "1000 2000 3000 5000"},
		// Some stores answer the last page again with the same token.
		{"stops_on_repeated_token", []*cloudwatchlogs.FilterLogEventsOutput{page("a", 1000), page("a", 2000)}, 2, "1000 2000"},
		// The request asks for 1 ms past --end; anything past it is dropped.
		{"end_inclusive", []*cloudwatchlogs.FilterLogEventsOutput{page("", 4000, 5000, 5001)}, 1, "4000 5000"},
		{"page_sorted", []*cloudwatchlogs.FilterLogEventsOutput{page("", 3000, 1000, 2000)}, 1, "1000 2000 3000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := &recordingAPI{pages: tt.pages}
			f := &filter{api: api, limiter: unlimited(), group: "/g", prefix: "web-0_shop_", pattern: `{ $.stream = "stderr" }`, pageLimit: 50}
			var got []string
			err := f.pages(t.Context(), start, end, func(evs []types.FilteredLogEvent) error {
				for _, e := range evs {
					got = append(got, fmt.Sprint(aws.ToInt64(e.Timestamp)))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, " ") != tt.wantTimes || len(api.reqs) != tt.wantCalls {
				t.Fatalf("events %v in %d calls, want %s in %d", got, len(api.reqs), tt.wantTimes, tt.wantCalls)
			}
			for i, in := range api.reqs {
				wantToken := ""
				if i > 0 {
					wantToken = aws.ToString(tt.pages[i-1].NextToken)
				}
				if aws.ToString(in.LogGroupName) != "/g" || aws.ToString(in.LogStreamNamePrefix) != "web-0_shop_" ||
					aws.ToString(in.FilterPattern) != `{ $.stream = "stderr" }` || aws.ToInt32(in.Limit) != 50 ||
					aws.ToInt64(in.StartTime) != 1000 || aws.ToInt64(in.EndTime) != 5001 || aws.ToString(in.NextToken) != wantToken {
					t.Fatalf("request %d = group %q prefix %q pattern %q limit %d start %d end %d token %q", i,
						aws.ToString(in.LogGroupName), aws.ToString(in.LogStreamNamePrefix), aws.ToString(in.FilterPattern),
						aws.ToInt32(in.Limit), aws.ToInt64(in.StartTime), aws.ToInt64(in.EndTime), aws.ToString(in.NextToken))
				}
			}
		})
	}
}

// TestFollowWindow checks the follower's window arithmetic with scripted
// polls: the second poll starts one overlap before the newest event, and
// ids seen in the overlap are not printed again.
func TestFollowWindow(t *testing.T) {
	t.Parallel()
	api := &recordingAPI{pages: []*cloudwatchlogs.FilterLogEventsOutput{
		page("", 10_000, 20_000),
		page("", 20_000, 19_500, 21_000), // 20000 again, a late 19500, a new 21000
		page(""),
	}}
	for _, p := range api.pages {
		for i := range p.Events {
			p.Events[i].IngestionTime = p.Events[i].Timestamp // no ingestion delay
		}
	}
	f := &filter{api: api, limiter: unlimited(), group: "/g"}
	var out strings.Builder
	ctx, cancel := context.WithCancel(t.Context())
	ticks := make(chan time.Time, 2)
	ticks <- time.Time{}
	ticks <- time.Time{}
	polls := 0
	fw := &follower{filter: f, poll: time.Second, overlap: 5 * time.Second, stderr: &out,
		after: func(time.Duration) <-chan time.Time { return ticks },
		polled: func() {
			polls++
			if polls == 3 {
				cancel()
			}
		}}
	err := fw.run(ctx, time.UnixMilli(0), func(event) bool { return true }, newPrinter(&out, formatRaw))
	if err != context.Canceled {
		t.Fatalf("run = %v, want context.Canceled", err)
	}
	starts := []int64{aws.ToInt64(api.reqs[0].StartTime), aws.ToInt64(api.reqs[1].StartTime), aws.ToInt64(api.reqs[2].StartTime)}
	if starts[0] != 0 || starts[1] != 15_000 || starts[2] != 16_000 {
		t.Fatalf("poll windows start at %v, want [0 15000 16000]", starts)
	}
	var ats []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		_, at, _ := strings.Cut(l, `"log":"at `)
		at, _, _ = strings.Cut(at, `"`)
		ats = append(ats, at)
	}
	if strings.Join(ats, " ") != "10000 20000 19500 21000" {
		t.Fatalf("printed %v, want each event once: 10000 20000 19500 21000", ats)
	}
}

func TestMissingStreamsAndGroups(t *testing.T) {
	t.Parallel()
	streamErr := &smithy.GenericAPIError{Code: "ResourceNotFoundException", Message: "The specified log stream does not exist."}
	groupErr := &smithy.GenericAPIError{Code: "ResourceNotFoundException", Message: "The specified log group does not exist."}
	tests := []struct {
		name    string
		prefix  string
		err     error
		wantErr string
	}{
		{"no_stream_for_prefix_is_no_lines", "web-0_", streamErr, ""},
		{"missing_group_with_prefix", "web-0_", groupErr, `log group "/g" does not exist in eu-west-1`},
		{"missing_stream_without_prefix", "", streamErr, `no log stream of "/g" matches`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &filter{api: &recordingAPI{err: tt.err}, limiter: unlimited(), group: "/g", region: "eu-west-1", prefix: tt.prefix}
			n := 0
			err := f.pages(t.Context(), time.UnixMilli(0), time.Time{}, func(evs []types.FilteredLogEvent) error { n += len(evs); return nil })
			if tt.wantErr == "" && (err != nil || n != 0) || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("pages = %v (%d events), want %q", err, n, tt.wantErr)
			}
		})
	}
}
