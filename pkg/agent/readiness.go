package agent

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Condition is one thing an agent needs before it is ready: it reports
// whether that thing holds and, when not, why (for /readyz's body).
//
// Readiness has one mechanism in nodekit: every agent registers its
// conditions with Ops.Check, and /readyz evaluates them all at each request,
// so it reports the state of that moment rather than a copy some loop
// refreshed. A Condition must therefore be cheap and safe for concurrent
// use: it reads state its component keeps (an informer's HasSynced, an
// atomic flag, the last result of a probe), and never waits on the network.
// Closed and Probe are the two shapes components that keep no such state
// need: a one-time event, and a periodic check of another service.
type Condition func() (ready bool, reason string)

// Closed is a Condition that holds once ch is closed (a first batch
// accepted, a first collection done); until then its reason is notYet.
func Closed(ch <-chan struct{}, notYet string) Condition {
	return func() (bool, string) {
		select {
		case <-ch:
			return true, ""
		default:
			return false, notYet
		}
	}
}

// DefaultProbeInterval is a Probe's interval when NewProbe is given none.
const DefaultProbeInterval = 2 * time.Second

// Probe is a Condition decided by work too slow to do at each /readyz
// request, such as a round trip to another service: Run repeats the work
// and State reports the last result. Build it with NewProbe.
type Probe struct {
	interval time.Duration
	try      func(ctx context.Context) error

	mu   sync.Mutex
	last error // nil after a successful try
}

var errNotProbed = errors.New("not checked yet")

// NewProbe returns a Probe running try every interval (DefaultProbeInterval
// if not positive). It starts nothing; until Run's first try ends, State
// reports not ready.
func NewProbe(interval time.Duration, try func(ctx context.Context) error) *Probe {
	if interval <= 0 {
		interval = DefaultProbeInterval
	}
	return &Probe{interval: interval, try: try, last: errNotProbed}
}

// Run tries at once and then every interval, each try bounded by the
// interval, until ctx ends. A try cut short by the end of ctx leaves the
// previous result. It returns nil when ctx ends.
func (p *Probe) Run(ctx context.Context) error {
	ticker := time.NewTicker(p.interval)
	defer ticker.Stop()
	for {
		tctx, cancel := context.WithTimeout(ctx, p.interval)
		err := p.try(tctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		p.mu.Lock()
		p.last = err
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// State is the Probe's Condition: ready when the last try succeeded, else
// that try's error as the reason.
func (p *Probe) State() (bool, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last != nil {
		return false, p.last.Error()
	}
	return true, ""
}

// Gate is a Condition whose state is set from outside.
//
// Deprecated: a component that knows its state should report it through
// Ops.Check (Closed for a one-time event); Gate stays for callers on other
// branches.
type Gate struct {
	mu  sync.Mutex
	ok  bool
	why string
}

// Gate registers a Gate, initially not ready.
//
// Deprecated: use Check; see Gate.
func (o *Ops) Gate(name string) *Gate {
	g := &Gate{why: "starting"}
	o.Check(name, g.state)
	return g
}

// Set marks the gate ready or not.
func (g *Gate) Set(ready bool) { g.SetWithReason(ready, "") }

// SetWithReason marks the gate and records why it is not ready, for /readyz's body.
func (g *Gate) SetWithReason(ready bool, reason string) {
	g.mu.Lock()
	g.ok, g.why = ready, reason
	g.mu.Unlock()
}

// Ready reports the gate's state.
func (g *Gate) Ready() bool {
	ok, _ := g.state()
	return ok
}

func (g *Gate) state() (bool, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ok, g.why
}
