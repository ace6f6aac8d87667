package query

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"golang.org/x/time/rate"

	"github.com/nodekit/nodekit/pkg/logship/record"
	"github.com/nodekit/nodekit/test/awsemu"
)

// testNow pins both the emulator's clock and the command's, so --since and
// the emulator's event-age rules agree exactly.
var testNow = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

const testGroup = "/aws/containerinsights/prod/application"

// line is one log line of the fixture, as the shipper would have sent it.
type line struct {
	ns, pod, container, id, stream, log string
	ts                                  time.Time
}

func (l line) streamName() string { return l.pod + "_" + l.ns + "_" + l.container + "-" + l.id }

func (l line) record() string {
	b, err := json.Marshal(record.Record{
		Log: l.log, Stream: l.stream, Time: l.ts.Format(time.RFC3339Nano),
		Kubernetes: record.Kubernetes{
			PodName: l.pod, NamespaceName: l.ns, ContainerName: l.container, DockerID: l.id,
			PodID: "uid-" + l.pod, Host: "node-a", ContainerImage: "img/" + l.container,
			Labels: map[string]string{"app": strings.SplitN(l.pod, "-", 2)[0]},
		},
	})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// plain is the line as the plain output shows it.
func (l line) plain() string {
	return fmt.Sprintf("%s/%s/%s  %s  %s", l.ns, l.pod, l.container, l.ts.UTC().Format(plainTime), l.log)
}

// containers of the fixture; lines are spread over them round-robin, so
// every selection spans several streams interleaved in time.
var fixtureContainers = []struct{ ns, pod, container, id string }{
	{"shop", "web-7f9c-abc12", "app", "c1"},
	{"shop", "web-7f9c-def34", "app", "c2"},
	{"shop", "web-7f9c-def34", "sidecar", "c3"},
	{"shop", "web-8888-xyz99", "app", "c4"},
	{"infra", "db-0", "postgres", "c5"},
	{"staging", "web-7f9c-abc12", "app", "c6"},
}

// fixture returns n lines, one every 10 seconds ending a minute before
// testNow; every 4th is stderr, every 5th mentions a timeout.
func fixture(n int) []line {
	var out []line
	start := testNow.Add(-time.Minute - time.Duration(n)*10*time.Second)
	for i := 0; i < n; i++ {
		c := fixtureContainers[i%len(fixtureContainers)]
		l := line{ns: c.ns, pod: c.pod, container: c.container, id: c.id, stream: "stdout",
			ts: start.Add(time.Duration(i)*10*time.Second + time.Duration(i)*time.Microsecond)}
		l.log = fmt.Sprintf("line %03d from %s", i, c.pod)
		if i%4 == 3 {
			l.stream = "stderr"
		}
		if i%5 == 2 {
			l.log += " ERROR upstream timeout"
		}
		out = append(out, l)
	}
	return out
}

type env struct {
	t      *testing.T
	emu    *awsemu.Emulator
	url    string
	client *cloudwatchlogs.Client
}

// fastRetryer retries like the standard retryer but without waiting, so
// throttling tests are quick.
func fastRetryer(attempts int) aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = attempts
		o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		o.RateLimiter = ratelimit.None
	})
}

func newEnv(t *testing.T) *env {
	t.Helper()
	emu, url := awsemu.StartServer(t, awsemu.Options{Now: func() time.Time { return testNow }})
	client := cloudwatchlogs.New(cloudwatchlogs.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDQUERYTEST", "secret", ""),
		Retryer:     fastRetryer(1),
	})
	return &env{t: t, emu: emu, url: url, client: client}
}

// put stores lines in testGroup, creating the group and streams as needed.
func (e *env) put(lines ...line) {
	e.t.Helper()
	ctx := e.t.Context()
	if _, err := e.client.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(testGroup)}); err != nil &&
		!strings.Contains(err.Error(), "ResourceAlreadyExists") {
		e.t.Fatal(err)
	}
	byStream := map[string][]types.InputLogEvent{}
	var order []string
	for _, l := range lines {
		s := l.streamName()
		if _, ok := byStream[s]; !ok {
			order = append(order, s)
		}
		byStream[s] = append(byStream[s], types.InputLogEvent{Timestamp: aws.Int64(l.ts.UnixMilli()), Message: aws.String(l.record())})
	}
	for _, s := range order {
		if _, err := e.client.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(testGroup), LogStreamName: aws.String(s)}); err != nil &&
			!strings.Contains(err.Error(), "ResourceAlreadyExists") {
			e.t.Fatal(err)
		}
		if _, err := e.client.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(testGroup), LogStreamName: aws.String(s), LogEvents: byStream[s]}); err != nil {
			e.t.Fatal(err)
		}
	}
}

// deps points the command at the emulator with static credentials, no
// retry delays and no rate limit.
func (e *env) deps() deps {
	return deps{
		awsOptions: []func(*config.LoadOptions) error{
			config.WithRegion("us-east-1"),
			config.WithBaseEndpoint(e.url),
			config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDQUERYTEST", "secret", "")),
			config.WithRetryer(func() aws.Retryer { return fastRetryer(5) }),
		},
		now:       func() time.Time { return testNow },
		rateLimit: rate.Inf,
	}
}

// run runs the command and returns stdout and the error. Pages hold 3
// events unless args say otherwise, so every test paginates.
func (e *env) run(d deps, args ...string) (string, error) {
	e.t.Helper()
	args = append([]string{"--page-size", "3"}, args...)
	var stdout, stderr bytes.Buffer
	err := run(e.t.Context(), args, &stdout, &stderr, d)
	return stdout.String(), err
}

func plainLines(lines []line) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.plain())
		b.WriteByte('\n')
	}
	return b.String()
}

func selectLines(lines []line, keep func(line) bool) []line {
	var out []line
	for _, l := range lines {
		if keep(l) {
			out = append(out, l)
		}
	}
	return out
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// putRaw stores one message that is not a shipper record.
func (e *env) putRaw(stream string, ts time.Time, msg string) {
	e.t.Helper()
	ctx := e.t.Context()
	if _, err := e.client.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(testGroup), LogStreamName: aws.String(stream)}); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.client.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(testGroup), LogStreamName: aws.String(stream),
		LogEvents: []types.InputLogEvent{{Timestamp: aws.Int64(ts.UnixMilli()), Message: aws.String(msg)}}}); err != nil {
		e.t.Fatal(err)
	}
}

func unlimited() *rate.Limiter { return rate.NewLimiter(rate.Inf, 1) }

// fakeInsights answers Running for runningFor polls (for ever when
// negative), then final with one row.
type fakeInsights struct {
	logsAPI
	runningFor   int
	final        string
	polls, stops int
}

func (f *fakeInsights) StartQuery(context.Context, *cloudwatchlogs.StartQueryInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.StartQueryOutput, error) {
	return &cloudwatchlogs.StartQueryOutput{QueryId: aws.String("q-1")}, nil
}

func (f *fakeInsights) GetQueryResults(context.Context, *cloudwatchlogs.GetQueryResultsInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.GetQueryResultsOutput, error) {
	f.polls++
	if f.runningFor < 0 || f.polls <= f.runningFor {
		return &cloudwatchlogs.GetQueryResultsOutput{Status: types.QueryStatusRunning}, nil
	}
	return &cloudwatchlogs.GetQueryResultsOutput{
		Status: types.QueryStatus(f.final),
		Results: [][]types.ResultField{{
			{Field: aws.String("@message"), Value: aws.String("hello")},
			{Field: aws.String("@ptr"), Value: aws.String("p")},
		}},
	}, nil
}

func (f *fakeInsights) StopQuery(context.Context, *cloudwatchlogs.StopQueryInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.StopQueryOutput, error) {
	f.stops++
	return &cloudwatchlogs.StopQueryOutput{Success: true}, nil
}
