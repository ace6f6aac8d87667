package agent

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestClosed(t *testing.T) {
	ch := make(chan struct{})
	cond := Closed(ch, "no batch accepted yet")
	if ok, why := cond(); ok || why != "no batch accepted yet" {
		t.Fatalf("before close: %v %q, want not ready with the reason", ok, why)
	}
	close(ch)
	if ok, why := cond(); !ok || why != "" {
		t.Fatalf("after close: %v %q, want ready", ok, why)
	}
}

// TestProbe drives a Probe try by try: each try announces itself on calls
// and returns what the test sends on results, so the test knows a try's
// result is recorded when the next try starts. The tries ignore their
// deadline (TestProbeBoundsEachTry covers it) and end with stop.
func TestProbe(t *testing.T) {
	calls := make(chan struct{})
	results := make(chan error)
	stop := make(chan struct{})
	p := NewProbe(time.Millisecond, func(context.Context) error {
		select {
		case calls <- struct{}{}:
		case <-stop:
			return errors.New("stopped")
		}
		select {
		case err := <-results:
			return err
		case <-stop:
			return errors.New("stopped")
		}
	})
	if ok, why := p.State(); ok || why != "not checked yet" {
		t.Fatalf("before Run: %v %q, want not ready, not checked yet", ok, why)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	steps := []struct {
		name    string
		result  error
		wantOK  bool
		wantWhy string
	}{
		{"a failing try", errors.New("metadata service answered 500"), false, "metadata service answered 500"},
		{"a passing try", nil, true, ""},
		{"failing again", errors.New("connection refused"), false, "connection refused"},
	}
	<-calls
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			results <- s.result
			<-calls // the next try started: this one's result is recorded
			if ok, why := p.State(); ok != s.wantOK || why != s.wantWhy {
				t.Fatalf("State = %v %q, want %v %q", ok, why, s.wantOK, s.wantWhy)
			}
		})
	}
	cancel()
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	if ok, why := p.State(); ok || why != "connection refused" {
		t.Fatalf("a try cut short by shutdown replaced the last result: %v %q", ok, why)
	}
}

// TestProbeBoundsEachTry: a try that does not return by itself is cut off
// after the interval and counts as a failure.
func TestProbeBoundsEachTry(t *testing.T) {
	tries := make(chan struct{}, 1)
	p := NewProbe(time.Millisecond, func(ctx context.Context) error {
		<-ctx.Done()
		select {
		case tries <- struct{}{}:
		default:
		}
		return ctx.Err()
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-tries
	<-tries // the first try's result is recorded before the second try ends
	if ok, why := p.State(); ok || why != context.DeadlineExceeded.Error() {
		t.Fatalf("State = %v %q, want not ready: %v", ok, why, context.DeadlineExceeded)
	}
}
