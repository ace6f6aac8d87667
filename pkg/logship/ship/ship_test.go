package ship

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nodekit/nodekit/pkg/logship/batch"
	"github.com/nodekit/nodekit/pkg/logship/filepos"
	"github.com/nodekit/nodekit/pkg/logship/record"
)

type commits struct {
	mu  sync.Mutex
	pos []filepos.Position
}

func (c *commits) Commit(_ context.Context, _ string, p filepos.Position) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pos = append(c.pos, p)
	return nil
}

func (c *commits) last() filepos.Position {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pos) == 0 {
		return filepos.Position{}
	}
	return c.pos[len(c.pos)-1]
}

func newSender(t *testing.T, client Client, cm Committer) (*Sender, *Metrics, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{BatchWait: 10 * time.Millisecond, MaxBufferBytes: 4 << 20, MaxBackoff: 20 * time.Millisecond, RetentionDays: 7},
		client, cm, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s, m, reg
}

// chunk builds a chunk of n events "msg-<first+i>|c<first>" with
// positions; "|c<first>" is the chunk's Tail.
func chunk(first, n int) *record.Chunk {
	c := &record.Chunk{Path: "/p/0.log", Tail: fmt.Appendf(nil, "|c%d", first)}
	for i := first; i < first+n; i++ {
		start := len(c.Buf)
		c.Buf = fmt.Appendf(c.Buf, "msg-%d", i)
		c.Events = append(c.Events, record.Event{Timestamp: int64(1000 + i), Start: start, End: len(c.Buf), Size: len(c.Buf) - start + len(c.Tail), Pos: int64(i + 1)})
	}
	return c
}

func run(t *testing.T, st *Stream) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	return func() {
		st.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
		cancel()
	}
}

func apiErr(code string) error { return &smithy.GenericAPIError{Code: code, Message: code} }

func httpErr(status int) error {
	return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}}, Err: errors.New("boom")}}
}

func TestRetriesCreatesAndDeliversInOrder(t *testing.T) {
	var mu sync.Mutex
	var got []string
	calls := 0
	created := map[string]int{}
	fake := &FakeClient{
		PutLogEventsFunc: func(_ context.Context, in *cloudwatchlogs.PutLogEventsInput) (*cloudwatchlogs.PutLogEventsOutput, error) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if err := batch.Validate(toEvents(in)); err != nil {
				t.Errorf("invalid batch sent: %v", err)
			}
			switch {
			case created["stream"] == 0:
				return nil, &types.ResourceNotFoundException{Message: aws.String("The specified log stream does not exist.")}
			case calls%3 == 0:
				return nil, &types.ThrottlingException{Message: aws.String("Rate exceeded")}
			case calls%5 == 0:
				return nil, httpErr(503)
			case calls%7 == 0:
				return nil, errors.New("connection reset by peer")
			}
			for _, e := range in.LogEvents {
				got = append(got, *e.Message)
			}
			return &cloudwatchlogs.PutLogEventsOutput{}, nil
		},
		CreateLogGroupFunc: func(context.Context, *cloudwatchlogs.CreateLogGroupInput) (*cloudwatchlogs.CreateLogGroupOutput, error) {
			mu.Lock()
			defer mu.Unlock()
			created["group"]++
			return &cloudwatchlogs.CreateLogGroupOutput{}, nil
		},
		CreateLogStreamFunc: func(context.Context, *cloudwatchlogs.CreateLogStreamInput) (*cloudwatchlogs.CreateLogStreamOutput, error) {
			mu.Lock()
			defer mu.Unlock()
			created["stream"]++
			return &cloudwatchlogs.CreateLogStreamOutput{}, nil
		},
		PutRetentionPolicyFunc: func(_ context.Context, in *cloudwatchlogs.PutRetentionPolicyInput) (*cloudwatchlogs.PutRetentionPolicyOutput, error) {
			if *in.RetentionInDays != 7 {
				t.Errorf("retention %d", *in.RetentionInDays)
			}
			mu.Lock()
			defer mu.Unlock()
			created["retention"]++
			return &cloudwatchlogs.PutRetentionPolicyOutput{}, nil
		},
	}
	cm := &commits{}
	s, _, reg := newSender(t, fake, cm)
	st := s.NewStream("g", "s", "key", "shop", nil)
	stop := run(t, st)
	const n = 30000 // spans several batches (10,000 events each at most)
	for i := 0; i < n; i += 1000 {
		if err := st.Send(context.Background(), chunk(i, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	if len(got) != n {
		t.Fatalf("delivered %d of %d", len(got), n)
	}
	for i, m := range got {
		if m != fmt.Sprintf("msg-%d|c%d", i, i/1000*1000) {
			t.Fatalf("event %d is %q", i, m)
		}
	}
	if created["group"] != 1 || created["stream"] != 1 || created["retention"] != 1 {
		t.Fatalf("created %v", created)
	}
	if p := cm.last(); p.Offset != n || p.Path != "/p/0.log" {
		t.Fatalf("last checkpoint %+v", p)
	}
	if v := testutil.ToFloat64(s.metrics.throttles); v == 0 {
		t.Error("no throttles counted")
	}
	if v := testutil.ToFloat64(s.metrics.buffered); v != 0 {
		t.Errorf("buffered bytes %v after everything was sent", v)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(fmt.Sprintf(`
# HELP logship_events_shipped_total Log events CloudWatch accepted.
# TYPE logship_events_shipped_total counter
logship_events_shipped_total{namespace="shop"} %d
`, n)), "logship_events_shipped_total"); err != nil {
		t.Error(err)
	}
}

func toEvents(in *cloudwatchlogs.PutLogEventsInput) []batch.Event {
	out := make([]batch.Event, len(in.LogEvents))
	for i, e := range in.LogEvents {
		out[i] = batch.Event{Timestamp: *e.Timestamp, Message: []byte(*e.Message)}
	}
	return out
}

func TestRejectedEventsCounted(t *testing.T) {
	fake := &FakeClient{PutLogEventsFunc: func(context.Context, *cloudwatchlogs.PutLogEventsInput) (*cloudwatchlogs.PutLogEventsOutput, error) {
		return &cloudwatchlogs.PutLogEventsOutput{RejectedLogEventsInfo: &types.RejectedLogEventsInfo{
			TooOldLogEventEndIndex: aws.Int32(2), TooNewLogEventStartIndex: aws.Int32(9),
		}}, nil
	}}
	s, _, reg := newSender(t, fake, &commits{})
	st := s.NewStream("g", "s", "key", "shop", nil)
	stop := run(t, st)
	if err := st.Send(context.Background(), chunk(0, 10)); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP logship_rejected_events_total Events CloudWatch reported in rejectedLogEventsInfo.
# TYPE logship_rejected_events_total counter
logship_rejected_events_total{namespace="shop",reason="too_new"} 1
logship_rejected_events_total{namespace="shop",reason="too_old"} 2
`), "logship_rejected_events_total"); err != nil {
		t.Error(err)
	}
}

// TestBackpressure: while CloudWatch fails, Send blocks once the buffer is
// full instead of growing memory or dropping.
func TestBackpressure(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	delivered := 0
	fake := &FakeClient{PutLogEventsFunc: func(ctx context.Context, in *cloudwatchlogs.PutLogEventsInput) (*cloudwatchlogs.PutLogEventsOutput, error) {
		select {
		case <-release:
		default:
			return nil, httpErr(500)
		}
		mu.Lock()
		delivered += len(in.LogEvents)
		mu.Unlock()
		return &cloudwatchlogs.PutLogEventsOutput{}, nil
	}}
	s, _, _ := newSender(t, fake, &commits{})
	st := s.NewStream("g", "s", "key", "shop", nil)
	stop := run(t, st)
	big := func(i int) *record.Chunk {
		c := &record.Chunk{Buf: make([]byte, 512<<10)}
		for j := range c.Buf {
			c.Buf[j] = 'x'
		}
		c.Events = []record.Event{{Timestamp: int64(i), Start: 0, End: len(c.Buf), Pos: int64(i)}}
		return c
	}
	sent := 0
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := st.Send(ctx, big(i))
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break // blocked: the reader would pause here
		}
		if err != nil {
			t.Fatal(err)
		}
		sent++
		if sent > 100 {
			t.Fatal("Send never blocked while CloudWatch failed")
		}
	}
	if held := testutil.ToFloat64(s.metrics.buffered); held > 4<<20 {
		t.Fatalf("holding %v bytes over the 4 MiB budget", held)
	}
	close(release)
	stop()
	if delivered != sent {
		t.Fatalf("delivered %d of %d accepted chunks", delivered, sent)
	}
}

// sdkErr is an error as the SDK returns it: the service's code and
// message inside the HTTP response error inside the operation error.
func sdkErr(status int, code string) error {
	return &smithy.OperationError{ServiceID: "CloudWatch Logs", OperationName: "PutLogEvents", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      &smithy.GenericAPIError{Code: code, Message: code},
		},
	}}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&types.ResourceNotFoundException{}, "not_found"},
		{sdkErr(400, "ResourceNotFoundException"), "not_found"},
		{&types.InvalidParameterException{}, "invalid"},
		{sdkErr(400, "InvalidParameterException"), "invalid"},
		{sdkErr(400, "ThrottlingException"), "throttled"},
		{sdkErr(400, "LimitExceededException"), "throttled"},
		// Codes the SDK's retryer knows as throttling that the hand-kept
		// list missed.
		{sdkErr(400, "ThrottledException"), "throttled"},
		{sdkErr(400, "RequestThrottledException"), "throttled"},
		{sdkErr(503, "SlowDown"), "throttled"},
		{sdkErr(503, "ServiceUnavailableException"), "server_error"},
		{sdkErr(500, "InternalFailure"), "server_error"},
		{sdkErr(400, "RequestTimeout"), "server_error"},
		{httpErr(502), "server_error"},
		// Needs an operator: not retryable-looking.
		{sdkErr(400, "AccessDeniedException"), "access_denied"},
		{sdkErr(400, "UnrecognizedClientException"), "access_denied"},
		{sdkErr(400, "ExpiredTokenException"), "access_denied"},
		{httpErr(403), "access_denied"},
		{sdkErr(400, "DataAlreadyAcceptedException"), "other"},
		{&url.Error{Op: "Post", URL: "https://logs", Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}}, "network"},
		{errors.New("read tcp: connection reset by peer"), "network"},
	}
	for _, tc := range tests {
		if got := classify(tc.err); string(got) != tc.want {
			t.Errorf("classify(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

// TestFastPutBodyMatchesSDK checks the body withFastPut sends against the
// SDK's own serialization of the same input.
func TestFastPutBodyMatchesSDK(t *testing.T) {
	msgs := []string{`{"log":"a \"quoted\" \\ path","stream":"stdout"}`, "plain", "tab\tnl\nctl\x01", "é😀\u2028", "bad \xff utf8"}
	var events []batch.Event
	var in []types.InputLogEvent
	for i, m := range msgs {
		wire, _ := record.AppendEscaped(nil, []byte(m), 1<<30)
		events = append(events, batch.Event{Timestamp: int64(1700000000000 + i), Message: wire, Size: len(m)})
		in = append(in, types.InputLogEvent{Timestamp: aws.Int64(int64(1700000000000 + i)), Message: aws.String(m)})
	}
	bodies := map[string][]byte{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies[r.Header.Get("X-Test")] = b
		if r.Header.Get("X-Amz-Target") != "Logs_20140328.PutLogEvents" || r.Header.Get("Content-Type") != "application/x-amz-json-1.1" {
			t.Errorf("headers %v", r.Header)
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = w.Write([]byte("{}"))
	}))
	defer srv.Close()
	for _, fast := range []bool{false, true} {
		opts := []func(*cloudwatchlogs.Options){func(o *cloudwatchlogs.Options) {
			o.APIOptions = append(o.APIOptions, smithyhttp.AddHeaderValue("X-Test", fmt.Sprint(fast)))
		}}
		ctx := context.Background()
		if fast {
			opts = append(opts, withFastPut)
			body := &putBody{}
			body.build("/g", "s\"1", events, nil)
			ctx = withBody(ctx, body)
		}
		client := cloudwatchlogs.New(cloudwatchlogs.Options{
			Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
			Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", ""),
		}, opts...)
		if _, err := client.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String("/g"), LogStreamName: aws.String("s\"1"), LogEvents: in}); err != nil {
			t.Fatal(err)
		}
	}
	var sdk, ours any
	if err := json.Unmarshal(bodies["false"], &sdk); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(bodies["true"], &ours); err != nil {
		t.Fatalf("fast body is not JSON: %v\n%s", err, bodies["true"])
	}
	if !reflect.DeepEqual(sdk, ours) {
		t.Fatalf("bodies differ:\nsdk:  %s\nours: %s", bodies["false"], bodies["true"])
	}
}

// TestPausedReaderWakesStreams is the regression test for shipping at one
// batch per BatchWait: chunks whose buffers weigh much more than their
// records fill the budget long before a batch fills. A reader paused on
// the budget must make the streams send what they hold at once; BatchWait
// is an hour here, so a stream that waits for its tick stalls the test.
func TestPausedReaderWakesStreams(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	fake := &FakeClient{PutLogEventsFunc: func(ctx context.Context, in *cloudwatchlogs.PutLogEventsInput) (*cloudwatchlogs.PutLogEventsOutput, error) {
		mu.Lock()
		sizes = append(sizes, len(in.LogEvents))
		mu.Unlock()
		return &cloudwatchlogs.PutLogEventsOutput{}, nil
	}}
	puts := func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), sizes...)
	}
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	const budget = 2 * batch.MaxBytes
	s, err := New(Config{BatchWait: time.Hour, MaxBufferBytes: budget, MaxBackoff: time.Second},
		fake, &commits{}, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	streams := []*Stream{s.NewStream("g", "a", "ka", "shop", nil), s.NewStream("g", "b", "kb", "shop", nil)}
	var stops []func()
	for _, st := range streams {
		stops = append(stops, run(t, st))
	}
	// Each chunk: one short record in a 300 KiB buffer, so six chunks
	// fill the budget while the batches hold a few hundred bytes.
	light := func(i int) *record.Chunk {
		c := &record.Chunk{Path: "/p/0.log", Buf: make([]byte, 0, 300<<10)}
		c.Buf = fmt.Appendf(c.Buf, "msg-%d", i)
		c.Events = []record.Event{{Timestamp: int64(1000 + i), Start: 0, End: len(c.Buf), Pos: int64(i + 1)}}
		return c
	}
	// The deadline only turns a stall (the old behaviour: an hour) into
	// a failure; nothing is timed.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	perChunk := int64(300<<10) + int64(unsafe.Sizeof(record.Event{}))
	fit := int(budget / perChunk)
	for i := range fit {
		if err := streams[i%2].Send(ctx, light(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Nobody waits for budget yet and no batch is full or old: nothing
	// may have been sent (small batches cost CPU and requests).
	if got := puts(); len(got) != 0 {
		t.Fatalf("sent %v before any reader waited for budget", got)
	}
	// These Sends need budget the queued chunks hold: they return only
	// because the streams send their partial batches without a tick.
	total := 4 * fit
	for i := fit; i < total; i++ {
		if err := streams[i%2].Send(ctx, light(i)); err != nil {
			t.Fatalf("chunk %d: a reader stayed paused while the streams held the budget: %v", i, err)
		}
	}
	if len(puts()) == 0 {
		t.Fatal("readers resumed but nothing was sent")
	}
	for _, stop := range stops {
		stop()
	}
	n := 0
	for _, k := range puts() {
		n += k
	}
	if n != total {
		t.Fatalf("delivered %d of %d events", n, total)
	}
}

// TestIdleReleasesBuffers: once nothing came in or went out for
// IdleRelease, the buffers kept for reuse are let go; new records after
// that are shipped as before.
func TestIdleReleasesBuffers(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	delivered := 0
	fake := &FakeClient{PutLogEventsFunc: func(_ context.Context, in *cloudwatchlogs.PutLogEventsInput) (*cloudwatchlogs.PutLogEventsOutput, error) {
		mu.Lock()
		delivered += len(in.LogEvents)
		mu.Unlock()
		return &cloudwatchlogs.PutLogEventsOutput{}, nil
	}}
	s, err := New(Config{BatchWait: 10 * time.Millisecond, MaxBufferBytes: 4 << 20, MaxBackoff: time.Second, IdleRelease: 50 * time.Millisecond},
		fake, &commits{}, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	st := s.NewStream("g", "s", "key", "shop", nil)
	stop := run(t, st)
	defer stop()
	// Bounded poll on the sender's own state: nothing here is timed, the
	// deadline only turns a hang into a failure.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	ctx := context.Background()
	for round := range 2 {
		c := st.NewChunk("/p/0.log", filepos.Identity{}, 1<<10)
		c.Buf = append(c.Buf, fmt.Sprintf("msg-%d", round)...)
		c.Events = append(c.Events, record.Event{Timestamp: int64(1000 + round), Start: 0, End: len(c.Buf), Pos: int64(round + 1)})
		if err := st.Send(ctx, c); err != nil {
			t.Fatal(err)
		}
		waitFor("delivery", func() bool { mu.Lock(); defer mu.Unlock(); return delivered == round+1 })
		waitFor("the idle release", func() bool { return s.trimmed.Load() })
		if n := len(s.spares) + len(s.bodies); n != 0 {
			t.Fatalf("%d buffers still kept after the idle release", n)
		}
	}
}

// TestBodyReader reads one body every way the SDK and net/http do: whole
// through WriteTo (the signer's hash), in small Reads (the transport),
// after seeking back, from the middle; each must give the same bytes, and
// Len must agree.
func TestBodyReader(t *testing.T) {
	var events []batch.Event
	for i, m := range []string{`{\"log\":\"a\"}`, "b", "", "ccc"} {
		if m == "" {
			continue
		}
		events = append(events, batch.Event{Timestamp: int64(1700000000000 + i/2), Message: []byte(m)})
	}
	body := &putBody{}
	// The first two events end with one chunk's tail, the last with
	// another's.
	body.build("/g", "s", events, []tailRun{{from: 0, tail: []byte(`,\"k\":1}`)}, {from: 2, tail: []byte(`,\"k\":2}`)}})
	want := `{"logGroupName":"/g","logStreamName":"s","logEvents":[` +
		`{"timestamp":1700000000000,"message":"{\"log\":\"a\"},\"k\":1}"},` +
		`{"timestamp":1700000000000,"message":"b,\"k\":1}"},` +
		`{"timestamp":1700000000001,"message":"ccc,\"k\":2}"}]}`
	r := body.reader()
	if r.Len() != len(want) {
		t.Fatalf("Len %d, want %d", r.Len(), len(want))
	}
	var whole bytes.Buffer
	if _, err := r.WriteTo(&whole); err != nil || whole.String() != want {
		t.Fatalf("WriteTo: %v\n got: %s\nwant: %s", err, whole.String(), want)
	}
	if n, err := r.Seek(0, io.SeekCurrent); err != nil || n != int64(len(want)) || r.Len() != 0 {
		t.Fatalf("position after WriteTo: %d, %v, Len %d", n, err, r.Len())
	}
	for _, step := range []int{1, 3, 7, 4096} {
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		var got []byte
		buf := make([]byte, step)
		for {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if string(got) != want {
			t.Fatalf("reads of %d: got %s", step, got)
		}
	}
	for _, off := range []int{0, 5, 60, len(want) - 2, len(want)} {
		if _, err := r.Seek(int64(off), io.SeekStart); err != nil {
			t.Fatal(err)
		}
		rest, err := io.ReadAll(r)
		if err != nil || string(rest) != want[off:] {
			t.Fatalf("from %d: %v: %s", off, err, rest)
		}
		if _, err := r.Seek(int64(off), io.SeekStart); err != nil {
			t.Fatal(err)
		}
		var tail bytes.Buffer
		if _, err := r.WriteTo(&tail); err != nil || tail.String() != want[off:] {
			t.Fatalf("WriteTo from %d: %v: %s", off, err, tail.String())
		}
	}
	if _, err := r.Seek(int64(len(want)+1), io.SeekStart); err == nil {
		t.Fatal("seek past the end accepted")
	}
	// A WriteTo that fails part way leaves the reader where the written
	// bytes end.
	for _, limit := range []int{1, 30, 70, len(want) - 1} {
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		lw := &limitedWriter{left: limit}
		if _, err := r.WriteTo(lw); err == nil {
			t.Fatalf("limit %d: WriteTo did not fail", limit)
		}
		rest, err := io.ReadAll(r)
		if err != nil || lw.buf.String()+string(rest) != want {
			t.Fatalf("limit %d: %v: wrote %q then read %q", limit, err, lw.buf.String(), rest)
		}
	}
}

// limitedWriter takes left bytes, then fails.
type limitedWriter struct {
	buf  bytes.Buffer
	left int
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	n := min(len(p), w.left)
	w.buf.Write(p[:n])
	w.left -= n
	if n < len(p) {
		return n, errors.New("writer full")
	}
	return n, nil
}
