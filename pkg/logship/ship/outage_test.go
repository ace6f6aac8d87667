package ship

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nodekit/nodekit/pkg/awscfg"
	"github.com/nodekit/nodekit/pkg/logship/filepos"
	"github.com/nodekit/nodekit/test/awsemu"
)

// faultProxy stands between the SDK and the emulator on loopback and fails
// connections the ways an unreachable endpoint does.
type faultProxy struct {
	ln     net.Listener
	target string
	mode   atomic.Value // "pass", "reset" or "hang"
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: strings.TrimPrefix(target, "http://")}
	p.mode.Store("pass")
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *faultProxy) url() string { return "http://" + p.ln.Addr().String() }

// set changes how connections fail; connections already open fail too.
func (p *faultProxy) set(mode string) {
	p.mode.Store(mode)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *faultProxy) track(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns = append(p.conns, c)
}

func (p *faultProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		switch p.mode.Load() {
		case "reset":
			// As a port nobody listens on: the connection is refused.
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		case "hang":
			// Packets dropped: the request goes nowhere, no answer comes.
			p.track(c)
			p.wg.Go(func() { io.Copy(io.Discard, c) })
		default:
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.track(c)
			p.track(up)
			p.wg.Go(func() { io.Copy(up, c); up.Close() })
			p.wg.Go(func() { io.Copy(c, up); c.Close() })
		}
	}
}

// TestOutageShowsAndDrainsAtFullSpeed: CloudWatch Logs refuses
// connections, then lets them hang, then answers 503, with the real SDK
// client. The stream waiting on it is counted by class, and once it has
// waited past UnreadyAfter readiness says CloudWatch Logs is out of
// reach. When it is back, the first batch another stream gets through
// wakes the waiting one at once, however long its backoff: the backlog
// drains at full speed, each event once.
func TestOutageShowsAndDrainsAtFullSpeed(t *testing.T) {
	emu, url := awsemu.StartServer(t, awsemu.Options{})
	proxy := newFaultProxy(t, url)
	cfg := aws.Config{
		Region: "us-east-1", BaseEndpoint: aws.String(proxy.url()),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
	}
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := New(Config{BatchWait: 10 * time.Millisecond, MaxBufferBytes: 4 << 20, MaxBackoff: time.Hour,
		CallTimeout: 300 * time.Millisecond, UnreadyAfter: time.Minute, Now: clock},
		NewClient(cfg), &commits{}, m, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	// Retries a phase apart: every phase's failure is seen.
	var delays atomic.Int32
	retry := make(chan struct{}, 1)
	long := false
	s.delay = func(int, error) time.Duration {
		delays.Add(1)
		select {
		case retry <- struct{}{}:
		default:
		}
		mu.Lock()
		defer mu.Unlock()
		if long {
			return time.Hour
		}
		return 10 * time.Millisecond
	}
	acked := make(chan struct{}, 1)
	ack := func(filepos.Position, int64) {
		select {
		case acked <- struct{}{}:
		default:
		}
	}
	a := s.NewStream("/g", "a", "ka", "shop", ack)
	b := s.NewStream("/g", "b", "kb", "shop", ack)
	stopA, stopB := run(t, a), run(t, b)
	// Both streams exist before the outage, and no call is under way
	// when it starts: a call whose answer the outage cuts off after
	// CloudWatch accepted it would be sent again (PutLogEvents has no
	// idempotency token).
	for i, st := range []*Stream{a, b} {
		if err := st.Send(context.Background(), recent(chunk(i*100, 1))); err != nil {
			t.Fatal(err)
		}
		<-acked
	}

	proxy.set("reset")
	if err := a.Send(context.Background(), recent(chunk(1, 50))); err != nil {
		t.Fatal(err)
	}
	for _, phase := range []struct {
		mode  string
		fault awsemu.Fault
		class awscfg.ErrorClass
		err   func(error) bool // the failure is this phase's
	}{
		{"reset", awsemu.Fault{}, awscfg.Network, func(err error) bool { return !errors.Is(err, context.DeadlineExceeded) }},
		{"hang", awsemu.Fault{}, awscfg.Network, func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
		{"pass", awsemu.Fault{ServerErrorEvery: 1}, awscfg.ServerError, func(error) bool { return true }},
	} {
		proxy.set(phase.mode)
		emu.SetFault("PutLogEvents", phase.fault)
		for {
			select {
			case <-retry:
			case <-time.After(time.Minute):
				t.Fatalf("%s: no retry in a minute", phase.mode)
			}
			s.mu.Lock()
			f := s.stalls[a]
			s.mu.Unlock()
			if f.class == phase.class && phase.err(f.err) {
				break
			}
		}
		if v := testutil.ToFloat64(m.stalled.WithLabelValues(string(phase.class))); v != 1 {
			t.Errorf("%s: logship_streams_stalled{class=%q} = %v, want 1", phase.mode, phase.class, v)
		}
		mu.Lock()
		now = now.Add(time.Minute)
		mu.Unlock()
	}
	why, blocked := s.Blocked()
	if !blocked || !strings.Contains(why, "out of reach for 3m0s") {
		t.Errorf("Blocked() = %q, %v after 3 minutes of failures; want CloudWatch Logs out of reach", why, blocked)
	}
	if v := testutil.ToFloat64(m.stalledFor); v < 180 {
		t.Errorf("logship_stalled_seconds = %v, want at least 180", v)
	}
	if n := len(emu.Events("/g", "a")); n != 1 {
		t.Fatalf("%d events of a accepted during the outage", n)
	}

	// a now waits an hour before its next attempt; b's batch, sent as
	// soon as CloudWatch Logs is back, must wake it.
	mu.Lock()
	long = true
	mu.Unlock()
	for d := delays.Load(); delays.Load() == d; {
		<-retry
	}
	proxy.set("pass")
	emu.SetFault("PutLogEvents", awsemu.Fault{})
	if err := b.Send(context.Background(), recent(chunk(101, 5))); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, emu, "a", 51)
	stopA()
	stopB()
	if n := len(emu.Events("/g", "a")); n != 51 {
		t.Errorf("a: %d events in CloudWatch, want 51 (each once)", n)
	}
	if why, blocked := s.Blocked(); blocked {
		t.Errorf("still not ready after the outage: %s", why)
	}
	if v := testutil.ToFloat64(m.stalledFor); v != 0 {
		t.Errorf("logship_stalled_seconds = %v after the outage", v)
	}
}

// waitEvents waits until stream /g/<stream> holds n events.
func waitEvents(t *testing.T, emu *awsemu.Emulator, stream string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := emu.WaitEvents(ctx, "/g", stream, n); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("stream %s: fewer than %d events after a minute (%d)", stream, n, len(emu.Events("/g", stream)))
		}
		t.Fatal(err)
	}
}
