package creds

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fakeSTS answers AssumeRole from a func field and records every input.
type fakeSTS struct {
	mu     sync.Mutex
	inputs []*sts.AssumeRoleInput
	calls  chan *sts.AssumeRoleInput // optional: receives each input
	fn     func(ctx context.Context, in *sts.AssumeRoleInput) (*sts.AssumeRoleOutput, error)
}

func (f *fakeSTS) AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, _ ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	f.mu.Lock()
	f.inputs = append(f.inputs, in)
	f.mu.Unlock()
	if f.calls != nil {
		f.calls <- in
	}
	return f.fn(ctx, in)
}

func (f *fakeSTS) count() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.inputs) }

// issue returns credentials named after the call number, valid for d from clk.
func issue(clk *clock, d time.Duration, n *int, mu *sync.Mutex) func(context.Context, *sts.AssumeRoleInput) (*sts.AssumeRoleOutput, error) {
	return func(context.Context, *sts.AssumeRoleInput) (*sts.AssumeRoleOutput, error) {
		mu.Lock()
		*n++
		id := "AKIA" + strings.Repeat("X", *n)
		mu.Unlock()
		return &sts.AssumeRoleOutput{Credentials: &ststypes.Credentials{
			AccessKeyId: aws.String(id), SecretAccessKey: aws.String("secret"), SessionToken: aws.String("token"),
			Expiration: aws.Time(clk.Now().Add(d)),
		}}, nil
	}
}

var key = Key{RoleARN: "arn:aws:iam::123456789012:role/app", ExternalID: "ext", SessionName: "ns.pod"}

func newCache(t *testing.T, f *fakeSTS, clk *clock) (*Cache, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := New(Config{Now: clk.Now, BackoffMax: time.Minute, Rate: 1000, Burst: 1000}, f, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return c, reg
}

func TestGetCachesAndPassesParameters(t *testing.T) {
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var n int
	var mu sync.Mutex
	f := &fakeSTS{fn: issue(clk, time.Hour, &n, &mu)}
	c, _ := newCache(t, f, clk)
	first, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if first != second || f.count() != 1 {
		t.Fatalf("second Get: %+v after %d STS calls; want the cached %+v after 1", second, f.count(), first)
	}
	in := f.inputs[0]
	if aws.ToString(in.RoleArn) != key.RoleARN || aws.ToString(in.ExternalId) != "ext" || aws.ToString(in.RoleSessionName) != "ns.pod" || aws.ToInt32(in.DurationSeconds) != 3600 {
		t.Errorf("AssumeRole input: role %q external ID %q session %q duration %d", aws.ToString(in.RoleArn), aws.ToString(in.ExternalId), aws.ToString(in.RoleSessionName), aws.ToInt32(in.DurationSeconds))
	}
	other := key
	other.ExternalID = ""
	if _, err := c.Get(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	if f.count() != 2 || f.inputs[1].ExternalId != nil {
		t.Errorf("a different external ID must be a different key without ExternalId; calls %d", f.count())
	}
}

func TestGetSingleFlight(t *testing.T) {
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var n int
	var mu sync.Mutex
	release := make(chan struct{})
	issuer := issue(clk, time.Hour, &n, &mu)
	f := &fakeSTS{calls: make(chan *sts.AssumeRoleInput, 100), fn: func(ctx context.Context, in *sts.AssumeRoleInput) (*sts.AssumeRoleOutput, error) {
		<-release
		return issuer(ctx, in)
	}}
	c, _ := newCache(t, f, clk)
	const callers = 16
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Get(context.Background(), key)
			errs <- err
		}()
	}
	<-f.calls // one fetch is in flight; the others join it or, arriving late, find its result cached
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := f.count(); got != 1 {
		t.Fatalf("STS called %d times for one key, want 1", got)
	}
}

func TestServesCacheWhileSTSDownThenBacksOff(t *testing.T) {
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var n int
	var mu sync.Mutex
	ok := issue(clk, time.Hour, &n, &mu)
	var down bool
	f := &fakeSTS{fn: func(ctx context.Context, in *sts.AssumeRoleInput) (*sts.AssumeRoleOutput, error) {
		if down {
			return nil, &smithy.GenericAPIError{Code: "Throttling", Message: "Rate exceeded"}
		}
		return ok(ctx, in)
	}}
	c, reg := newCache(t, f, clk)
	c.Track("uid-1", key)
	for _, k := range c.scan() {
		c.refresh(context.Background(), k)
	}
	cached, found := c.Lookup(key)
	if !found || f.count() != 1 {
		t.Fatalf("Track did not prefetch: found %v, STS calls %d", found, f.count())
	}

	down = true
	clk.Add(30 * time.Minute) // refresh due (< 37m30s left), still servable
	for _, k := range c.scan() {
		c.refresh(context.Background(), k)
	}
	if f.count() != 2 {
		t.Fatalf("refresh did not call STS: %d calls", f.count())
	}
	got, err := c.Get(context.Background(), key)
	if err != nil || got != cached {
		t.Fatalf("while STS is down Get = %+v, %v; want the cached credentials", got, err)
	}
	if due := c.scan(); len(due) != 0 {
		t.Fatalf("scan during backoff returned %v", due)
	}
	if v := testutil.ToFloat64(c.metrics.sts.WithLabelValues("throttled")); v != 1 {
		t.Errorf("throttled STS calls = %v, want 1", v)
	}
	if v := testutil.ToFloat64(c.metrics.backoffs); v != 1 {
		t.Errorf("backoffs = %v, want 1", v)
	}

	clk.Add(20 * time.Minute) // 10 minutes left: no longer servable
	if _, err := c.Get(context.Background(), key); err == nil {
		t.Fatal("Get served credentials with less than 15 minutes left")
	}
	calls := f.count()
	if _, err := c.Get(context.Background(), key); !errors.Is(err, ErrBackoff) || f.count() != calls {
		t.Fatalf("Get during backoff: %v after %d calls (was %d); want ErrBackoff without calling STS", err, f.count(), calls)
	}
	// Deep in a backoff, a pod that is refused still probes STS every
	// ProbeInterval, so a recovered STS is used at once.
	for range 6 {
		clk.Add(5 * time.Second)
		c.Get(context.Background(), key)
	}
	if probes := f.count() - calls; probes != 6 {
		t.Fatalf("refused pods probed STS %d times in 30 s, want 6 (one per ProbeInterval)", probes)
	}

	down = false
	clk.Add(5 * time.Second)
	got, err = c.Get(context.Background(), key)
	if err != nil || got == cached {
		t.Fatalf("after recovery Get = %+v, %v; want fresh credentials", got, err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP metaproxy_credential_cache_requests_total Credential lookups by result: hit, miss (STS called or joined) or backoff (refused while backing off).
# TYPE metaproxy_credential_cache_requests_total counter
metaproxy_credential_cache_requests_total{result="backoff"} 1
metaproxy_credential_cache_requests_total{result="hit"} 1
metaproxy_credential_cache_requests_total{result="miss"} 8
`), "metaproxy_credential_cache_requests_total"); err != nil {
		t.Error(err)
	}
}

func TestRunPrefetchesTrackedKeys(t *testing.T) {
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var n int
	var mu sync.Mutex
	f := &fakeSTS{calls: make(chan *sts.AssumeRoleInput, 10), fn: issue(clk, time.Hour, &n, &mu)}
	c, _ := newCache(t, f, clk)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	c.Track("uid-1", key)
	in := <-f.calls
	if aws.ToString(in.RoleArn) != key.RoleARN {
		t.Fatalf("prefetched %q", aws.ToString(in.RoleArn))
	}
	// Tracking the same key again (a pod update) must not fetch again.
	c.Track("uid-1", key)
	c.Track("uid-2", key)
}

func TestScanEvictsUnused(t *testing.T) {
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var n int
	var mu sync.Mutex
	f := &fakeSTS{fn: issue(clk, time.Hour, &n, &mu)}
	c, _ := newCache(t, f, clk)
	if _, err := c.Get(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	tracked := Key{RoleARN: key.RoleARN, SessionName: "ns.kept"}
	c.Track("uid-kept", tracked)
	c.Track("uid-gone", Key{RoleARN: key.RoleARN, SessionName: "ns.gone"})
	c.Untrack("uid-gone")
	clk.Add(2 * time.Hour)
	due := c.scan()
	if len(due) != 1 || due[0] != tracked {
		t.Fatalf("scan due = %v, want only the tracked key", due)
	}
	if n, _ := c.stats(); n != 1 {
		t.Fatalf("%d entries left, want 1", n)
	}
}

func TestNewRejectsBadSessionDuration(t *testing.T) {
	for _, d := range []time.Duration{15 * time.Minute, 13 * time.Hour} {
		if _, err := New(Config{SessionDuration: d}, &fakeSTS{}, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
			t.Errorf("New accepted session duration %v", d)
		}
	}
}
