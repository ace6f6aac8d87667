package ship

import (
	"context"
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
func recent(c *Chunk) *Chunk {
	now := time.Now().UnixMilli()
	for i := range c.Events {
		c.Events[i].Timestamp = now
	}
	return c
}
