package ship

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodekit/nodekit/test/awsemu"

	"github.com/nodekit/nodekit/pkg/logship/record"
)

// TestClientDeliversWhateverTheCallerOptions: the Sender writes the events
// only into the request body, so an SDK client serializing its event-less
// input would have every batch dropped as invalid. Before Client could only
// be built here, a caller's wrapper around a client built without the
// body option passed New's check and shipped nothing; now the only SDK
// client is NewClient's, and the caller's own options (a middleware, a
// retryer) cannot take the body away.
func TestClientDeliversWhateverTheCallerOptions(t *testing.T) {
	emu, url := awsemu.StartServer(t, awsemu.Options{})
	cfg := aws.Config{
		Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
	}
	traced := func(o *cloudwatchlogs.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return smithyhttp.AddHeaderValue("X-Trace", "1")(s)
		})
		o.Retryer = aws.NopRetryer{}
	}
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{BatchWait: 10 * time.Millisecond, MaxBufferBytes: 4 << 20, MaxBackoff: 20 * time.Millisecond},
		NewClient(cfg, traced), &commits{}, m, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	st := s.NewStream("/g", "s", "k", "shop", nil)
	stop := run(t, st)
	if err := st.Send(context.Background(), recent(chunk(0, 5))); err != nil {
		t.Fatal(err)
	}
	stop()
	if got := len(emu.Events("/g", "s")); got != 5 {
		t.Fatalf("CloudWatch holds %d of 5 events", got)
	}
}

// recent dates c's events now, so that CloudWatch keeps them.
func recent(c *record.Chunk) *record.Chunk {
	now := time.Now().UnixMilli()
	for i := range c.Events {
		c.Events[i].Timestamp = now
	}
	return c
}

// TestNewStreamsAreCreatedBeforeTheirFirstPut: on a real node 16 of 122
// PutLogEvents calls failed with ResourceNotFound, one per new stream,
// before the stream was created. A stream never seen is created first, so
// every put lands.
func TestNewStreamsAreCreatedBeforeTheirFirstPut(t *testing.T) {
	emu, url := awsemu.StartServer(t, awsemu.Options{})
	cfg := aws.Config{
		Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
	}
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{BatchWait: 10 * time.Millisecond, MaxBufferBytes: 4 << 20, MaxBackoff: 20 * time.Millisecond},
		NewClient(cfg), &commits{}, m, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	const streams = 4
	for i := range streams {
		st := s.NewStream("/g", fmt.Sprint("s", i), fmt.Sprint("k", i), "shop", nil)
		stop := run(t, st)
		for j := range 2 {
			// Two batches: only the first may need the stream created.
			if err := st.Send(context.Background(), recent(chunk(10*j, 3))); err != nil {
				t.Fatal(err)
			}
			if err := emu.WaitFor(t.Context(), func() bool { return len(emu.Events("/g", fmt.Sprint("s", i))) == 3*(j+1) }); err != nil {
				t.Fatal(err)
			}
		}
		stop()
	}
	if got, want := emu.Count("PutLogEvents"), 2*streams; got != want {
		t.Errorf("%d PutLogEvents calls for %d batches: some failed for a missing stream", got, want)
	}
	if got := emu.Count("CreateLogStream"); got != streams {
		t.Errorf("%d CreateLogStream calls for %d streams", got, streams)
	}
	if got := emu.Count("CreateLogGroup"); got != 1 {
		t.Errorf("%d CreateLogGroup calls for one group", got)
	}
}
