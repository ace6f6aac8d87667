package ship

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// syncLog is a log destination safe for the stream's goroutine and the test.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// TestDeniedGroupIsRetriedAdvisedAndBlocks: a group logship may not
// create holds the stream up. It keeps retrying (nothing is dropped), the
// stalled-streams gauge names the class, the fix is logged once a minute
// (by the Sender's clock), and Blocked reports it until the group can be
// made; then everything is delivered and the stall clears.
func TestDeniedGroupIsRetriedAdvisedAndBlocks(t *testing.T) {
	var mu sync.Mutex
	denied, delivered, attempts := true, 0, 0
	var now time.Time = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	created := false
	attempted := make(chan struct{}, 100)
	fake := &FakeClient{
		PutLogEventsFunc: func(_ context.Context, in *cloudwatchlogs.PutLogEventsInput) (*cloudwatchlogs.PutLogEventsOutput, error) {
			mu.Lock()
			defer mu.Unlock()
			if !created {
				return nil, sdkErr(400, "ResourceNotFoundException")
			}
			delivered += len(in.LogEvents)
			return &cloudwatchlogs.PutLogEventsOutput{}, nil
		},
		CreateLogGroupFunc: func(context.Context, *cloudwatchlogs.CreateLogGroupInput) (*cloudwatchlogs.CreateLogGroupOutput, error) {
			mu.Lock()
			defer mu.Unlock()
			attempts++
			select {
			case attempted <- struct{}{}:
			default:
			}
			if denied {
				return nil, sdkErr(400, "AccessDeniedException")
			}
			created = true
			return &cloudwatchlogs.CreateLogGroupOutput{}, nil
		},
	}
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncLog{}
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := New(Config{BatchWait: 10 * time.Millisecond, MaxBufferBytes: 4 << 20, MaxBackoff: time.Millisecond, Now: clock},
		fake, &commits{}, m, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	st := s.NewStream("/g", "s", "k", "shop", nil)
	stop := run(t, st)
	if err := st.Send(context.Background(), chunk(0, 5)); err != nil {
		t.Fatal(err)
	}
	waitAttempts := func(n int) {
		t.Helper()
		for {
			mu.Lock()
			k := attempts
			mu.Unlock()
			if k >= n {
				return
			}
			select {
			case <-attempted:
			case <-time.After(time.Minute):
				t.Fatalf("%d CreateLogGroup attempts, want %d", k, n)
			}
		}
	}
	waitAttempts(20)
	const advice = "may not create it: create it, or allow logs:CreateLogGroup"
	if n := logs.count(advice); n != 1 {
		t.Errorf("advice logged %d times within a minute, want 1", n)
	}
	if v := testutil.ToFloat64(m.stalled.WithLabelValues("access_denied")); v != 1 {
		t.Errorf("logship_streams_stalled{class=access_denied} = %v, want 1", v)
	}
	if why, blocked := s.Blocked(); !blocked || !strings.Contains(why, "logs:CreateLogGroup") {
		t.Errorf("Blocked() = %q, %v; want the CreateLogGroup fix", why, blocked)
	}

	// A minute later the advice is due again.
	mu.Lock()
	now = now.Add(adviceEvery)
	seen := attempts
	mu.Unlock()
	waitAttempts(seen + 2)
	if n := logs.count(advice); n != 2 {
		t.Errorf("advice logged %d times over two minutes, want 2", n)
	}

	mu.Lock()
	denied = false
	mu.Unlock()
	stop()
	mu.Lock()
	defer mu.Unlock()
	if delivered != 5 {
		t.Fatalf("delivered %d of 5 events after the group could be made", delivered)
	}
	if why, blocked := s.Blocked(); blocked {
		t.Errorf("still blocked after delivery: %s", why)
	}
	if v := testutil.ToFloat64(m.stalled.WithLabelValues("access_denied")); v != 0 {
		t.Errorf("logship_streams_stalled{class=access_denied} = %v after delivery, want 0", v)
	}
}
