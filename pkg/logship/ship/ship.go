// Package ship sends each container's records to its CloudWatch Logs stream.
//
// One goroutine owns each stream's batch (promtail's client.run pattern):
// it fills the batch from the stream's channel of Chunks, sends it when it
// is full or old enough, and saves the stream's checkpoint once CloudWatch
// accepted it. Puts run in parallel across streams and one at a time within
// a stream, so lines keep their file order. Throttling, server errors and
// connection failures are retried forever with the SDK's backoff, and so
// are failures an operator must fix (access denied, a group logship may
// not create): those are counted by error class, logged once a minute with
// the fix, and reported by Blocked for readiness. While a stream retries
// its channel fills and its reader pauses: memory stays bounded and
// nothing is dropped. A stream is created before its first put (an
// existing one answers ResourceAlreadyExists), its group with the first
// stream of it, and both again when a put finds them missing (someone
// deleted them): there are no DescribeLogStreams calls and no sequence
// tokens on the hot path.
package ship

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"golang.org/x/sync/semaphore"

	"github.com/nodekit/nodekit/pkg/awscfg"
	"github.com/nodekit/nodekit/pkg/logship/batch"
	"github.com/nodekit/nodekit/pkg/logship/filepos"
	"github.com/nodekit/nodekit/pkg/logship/record"
)

// Committer saves how far a stream's records were accepted; logship's
// checkpoint store implements it. Commit returns once the position is
// durable, and a stream sends its next batch only after: while saving
// fails (a full disk), the stream waits, never more than the batch in
// flight ahead of what a restart would resume from.
type Committer interface {
	Commit(ctx context.Context, key string, pos filepos.Position) error
}

// queued is a Chunk in the Sender's hands.
type queued struct {
	c *record.Chunk
	// weight is what the chunk holds of the Sender's memory budget.
	weight int64
	// added counts events taken into batches (owned by the stream's Run).
	added int
}

// Config holds the settings shared by every stream.
type Config struct {
	// BatchWait is how long a batch may wait for more events.
	BatchWait time.Duration
	// RetentionDays is set on groups logship creates (0: never expire).
	RetentionDays int32
	// MaxBufferBytes bounds the records held across all streams; readers
	// block in Acquire above it.
	MaxBufferBytes int64
	// MaxBackoff caps the wait between retries.
	MaxBackoff time.Duration
	// MaxPuts bounds the PutLogEvents calls in flight across streams
	// (0: 2). Each holds a request body of up to about a MiB: on a node
	// with many busy streams they, not the records, would set the
	// memory peak. Two calls of a full batch each are far more than a
	// node's log rate; the backoff between retries holds no slot.
	MaxPuts int
	// IdleRelease is how long the Sender goes without records before it
	// lets go of the buffers it keeps for reuse and hands the memory back
	// to the OS (0: 5s): a burst must not pin its peak on a quiet node.
	IdleRelease time.Duration
	// CallTimeout bounds each CloudWatch Logs call (0: 20s). Without it a
	// call on a connection whose packets are dropped hangs for the
	// kernel's TCP timeout (about 15 minutes), unnoticed and holding a
	// put slot: with it the call fails as a network error and is retried.
	CallTimeout time.Duration
	// UnreadyAfter is how long a stream may wait on a failing call that
	// passes by itself (throttling, server and network errors) before
	// Blocked reports it (0: 1m): readiness then says CloudWatch Logs is
	// out of reach, while short blips leave it alone.
	UnreadyAfter time.Duration
	// Now is the clock of the once-a-minute failure advice and of the
	// stalls' ages (time.Now).
	Now func() time.Time
}

// Sender owns the streams. Create it with New; run each stream with
// Stream.Run.
type Sender struct {
	cfg     Config
	client  Client
	commit  Committer
	logger  *slog.Logger
	metrics *Metrics
	budget  *semaphore.Weighted
	puts    *semaphore.Weighted

	// delay is the wait before a retry (the backoff's; tests lengthen it).
	delay func(attempt int, err error) time.Duration

	mu     sync.Mutex
	groups map[string]bool // groups known to exist
	// stalls are the streams whose batch waits on a failing call, and
	// advised when each piece of advice (class, call, group) was last
	// logged.
	stalls  map[*Stream]failure
	advised map[adviceKey]time.Time
	// recovered is closed (and replaced) when a call succeeds while
	// streams are stalled: CloudWatch Logs is back, and the streams
	// waiting out a backoff retry at once, so the backlog drains at full
	// speed. Guarded by mu.
	recovered chan struct{}
	// nstalls is len(stalls), for the lock-free look of every put.
	nstalls atomic.Int32

	// spares recycles chunk buffers once CloudWatch accepted their
	// records, so steady shipping allocates (and zeroes) almost nothing.
	// A bounded free list rather than a sync.Pool: a pool is emptied by
	// every GC, which runs often near the memory limit, and holds any
	// number of buffers in between; this holds at most about the budget.
	spares chan spare
	// bodies recycles PutLogEvents request bodies; one per put slot.
	bodies chan *putBody
	// waiting counts readers blocked on the budget. While any is, streams
	// send the partial batches they hold instead of waiting for them to
	// fill: the budget they hold may be what a full batch needs, so
	// waiting would leave everyone idle until BatchWait.
	waiting atomic.Int32
	// starved is closed (and replaced) when a reader starts waiting, to
	// wake the streams at once.
	starveMu sync.Mutex
	starved  chan struct{}
	// active is when records last came in or went out (Unix ns); trimmed
	// says the buffers were let go since.
	active  atomic.Int64
	trimmed atomic.Bool
}

// touch records activity, so an idle release happens again after it.
func (s *Sender) touch() {
	s.active.Store(time.Now().UnixNano())
	if s.trimmed.Load() {
		s.trimmed.Store(false)
	}
}

// idle reports whether the Sender has had nothing to do for d.
func (s *Sender) idle(now time.Time, d time.Duration) bool {
	return now.UnixNano()-s.active.Load() >= int64(d)
}

// trim lets go of the reusable buffers once the Sender has been idle for
// IdleRelease, and returns the memory to the OS. After a burst those
// buffers are most of logship's heap; keeping them would hold the burst's
// peak for good. Forcing the collection here (once per quiet spell, at
// most once per IdleRelease) is what makes that memory free: an idle
// process allocates too little to start a GC of its own.
func (s *Sender) trim(now time.Time) {
	if !s.idle(now, s.cfg.IdleRelease) || !s.trimmed.CompareAndSwap(false, true) {
		return
	}
	for drained := false; !drained; {
		select {
		case <-s.spares:
		case <-s.bodies:
		default:
			drained = true
		}
	}
	debug.FreeOSMemory()
}

// starvedCh returns the channel closed when a reader next starts waiting.
func (s *Sender) starvedCh() <-chan struct{} {
	s.starveMu.Lock()
	defer s.starveMu.Unlock()
	return s.starved
}

func (s *Sender) starve() {
	s.starveMu.Lock()
	defer s.starveMu.Unlock()
	close(s.starved)
	s.starved = make(chan struct{})
}

// spare is a sent chunk's storage, kept for the next chunk.
type spare struct {
	buf    []byte
	events []record.Event
}

// Chunk buffers between minSpareBuf and maxSpareBuf are kept for reuse: a
// rare huge record must not pin its buffer, and a quiet container's small
// one is not worth keeping (a busy reader would only throw it away).
const (
	minSpareBuf = 64 << 10
	maxSpareBuf = 1 << 20
)

// NewChunk returns an empty Chunk of the file path (id) with at least n
// bytes of buffer, reusing the storage of chunks already sent.
func (st *Stream) NewChunk(path string, id filepos.Identity, n int) *record.Chunk {
	st.s.touch()
	c := &record.Chunk{Path: path, ID: id}
	select {
	case sp := <-st.s.spares:
		c.Buf, c.Events = sp.buf[:0], sp.events[:0]
	default:
	}
	if cap(c.Buf) < n {
		c.Buf = make([]byte, 0, n)
	}
	return c
}

// New returns a Sender; it starts nothing.
func New(cfg Config, client Client, commit Committer, metrics *Metrics, logger *slog.Logger) (*Sender, error) {
	if cfg.BatchWait <= 0 || cfg.MaxBufferBytes < 2*batch.MaxBytes || cfg.MaxBackoff <= 0 {
		return nil, fmt.Errorf("invalid sender config %+v: batch wait and max backoff must be positive and the buffer at least %d bytes", cfg, 2*batch.MaxBytes)
	}
	puts := cmp.Or(cfg.MaxPuts, 2)
	cfg.IdleRelease = cmp.Or(cfg.IdleRelease, 5*time.Second)
	cfg.CallTimeout = cmp.Or(cfg.CallTimeout, 20*time.Second)
	cfg.UnreadyAfter = cmp.Or(cfg.UnreadyAfter, time.Minute)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Sender{
		cfg: cfg, client: client, commit: commit, logger: logger, metrics: metrics,
		delay: awscfg.NewBackoff(cfg.MaxBackoff).Delay, stalls: map[*Stream]failure{}, advised: map[adviceKey]time.Time{},
		budget: semaphore.NewWeighted(cfg.MaxBufferBytes), groups: map[string]bool{},
		starved: make(chan struct{}), recovered: make(chan struct{}), puts: semaphore.NewWeighted(int64(puts)),
		spares: make(chan spare, max(4, cfg.MaxBufferBytes/(256<<10))), bodies: make(chan *putBody, puts),
	}
	s.touch()
	if metrics != nil {
		metrics.sender.Store(s)
	}
	return s, nil
}

// Stream is one CloudWatch stream fed by one container's files.
type Stream struct {
	s         *Sender
	group     string
	name      string
	key       string // checkpoint key
	namespace string
	in        chan *queued
	logger    *slog.Logger
	acked     func(pos filepos.Position, lastTimestamp int64)
	// stalled says the stream is in the Sender's stalls; seen that this
	// process created it or put to it. Both owned by Run.
	stalled, seen bool
}

// NewStream returns a stream; Run it, Send to it, then Close it.
// acked, if not nil, is called after every accepted batch.
func (s *Sender) NewStream(group, name, key, namespace string, acked func(filepos.Position, int64)) *Stream {
	return &Stream{
		s: s, group: group, name: name, key: key, namespace: namespace,
		in: make(chan *queued, 4), acked: acked,
		logger: s.logger.With("log_group", group, "log_stream", name),
	}
}

// Send hands c to the stream, blocking while the memory budget is spent or
// the stream's queue is full (that is how a reader pauses).
func (st *Stream) Send(ctx context.Context, rc *record.Chunk) error {
	if len(rc.Events) == 0 {
		return nil
	}
	c := &queued{c: rc}
	c.weight = int64(cap(rc.Buf)) + int64(cap(rc.Events))*int64(unsafe.Sizeof(record.Event{}))
	c.weight = min(c.weight, st.s.cfg.MaxBufferBytes)
	if !st.s.budget.TryAcquire(c.weight) {
		// Count ourselves as waiting before waking the streams, so that
		// each one sees a waiter when it looks.
		st.s.waiting.Add(1)
		st.s.starve()
		err := st.s.budget.Acquire(ctx, c.weight)
		st.s.waiting.Add(-1)
		if err != nil {
			return fmt.Errorf("waiting for buffer space for stream %s: %w", st.name, err)
		}
	}
	st.s.metrics.buffered.Add(float64(c.weight))
	select {
	case st.in <- c:
		return nil
	case <-ctx.Done():
		st.s.release(c)
		return fmt.Errorf("queueing records for stream %s: %w", st.name, ctx.Err())
	}
}

// Close ends the input; Run sends what is left and returns.
func (st *Stream) Close() { close(st.in) }

func (s *Sender) release(q *queued) {
	s.budget.Release(q.weight)
	s.metrics.buffered.Sub(float64(q.weight))
	// Nothing refers to the buffer any more: its events were sent (or the
	// stream stopped) and the SDK call that saw it as strings returned.
	c := q.c
	if c.Buf != nil && cap(c.Buf) >= minSpareBuf && cap(c.Buf) <= maxSpareBuf {
		select {
		case s.spares <- spare{buf: c.Buf[:0], events: c.Events[:0]}:
		default:
		}
	}
	c.Buf, c.Events = nil, nil
}

// pending is the batch being built and the chunks it references.
type pending struct {
	b      batch.Batch
	tails  []tailRun // which Tail each event of b ends with
	chunks []*queued // chunks with events not yet accepted, in order
	last   *queued   // chunk of the last event in b
	lastEv record.Event
	born   time.Time
}

// Run sends the stream's records until Close was called and everything was
// sent, or ctx ends (records not yet accepted are then left for the next
// start: the checkpoint has not moved past them).
func (st *Stream) Run(ctx context.Context) error {
	var p pending
	defer func() {
		for _, c := range p.chunks {
			st.s.release(c)
		}
	}()
	// The ticker runs only while a batch waits for BatchWait, and the
	// idle timer, every IdleRelease/2, only until the stream and the
	// Sender have let their storage go: a node has a stream per
	// container, most of them quiet, and each wakeup costs CPU.
	every := max(st.s.cfg.BatchWait/10, time.Millisecond)
	tick := time.NewTicker(every)
	defer tick.Stop()
	ticking := true
	idleEvery := max(st.s.cfg.IdleRelease/2, time.Millisecond)
	idleT := time.NewTimer(idleEvery)
	defer idleT.Stop()
	for {
		// Take the channel before looking at waiting: a reader that
		// starts waiting after the look closes this very channel.
		starved := st.s.starvedCh()
		if p.b.Len() > 0 && len(st.in) == 0 && st.s.waiting.Load() > 0 {
			// A reader is paused for budget and this stream has taken
			// everything queued: send now, whatever the batch's size.
			st.flush(ctx, &p)
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case c, ok := <-st.in:
			if !ok {
				if p.b.Len() > 0 {
					st.flush(ctx, &p)
				}
				return nil
			}
			st.add(ctx, &p, c)
			if !ticking {
				// Even if add sent everything: the tick that finds the
				// batch empty arms the idle timer.
				tick.Reset(every)
				ticking = true
			}
		case <-starved:
		case <-tick.C:
			if p.b.Len() > 0 && time.Since(p.born) >= st.s.cfg.BatchWait {
				st.flush(ctx, &p)
			}
			if p.b.Len() == 0 {
				tick.Stop()
				ticking = false
				idleT.Reset(idleEvery)
			}
		case <-idleT.C:
			if p.b.Len() > 0 || !st.idle(&p) {
				idleT.Reset(idleEvery)
			}
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// idle drops the stream's batch storage (up to MaxEvents entries) once
// the Sender is quiet, then lets the Sender trim its own. It reports
// whether both are done, so that nothing is left to do until records come.
func (st *Stream) idle(p *pending) bool {
	now := time.Now()
	if p.b.Events != nil && len(p.chunks) == 0 && st.s.idle(now, st.s.cfg.IdleRelease/2) {
		p.b.Events, p.chunks, p.tails = nil, nil, nil
	}
	st.s.trim(now)
	return p.b.Events == nil && len(p.chunks) == 0 && st.s.trimmed.Load()
}

func (st *Stream) add(ctx context.Context, p *pending, q *queued) {
	p.chunks = append(p.chunks, q)
	c := q.c
	for i, ev := range c.Events {
		e := batch.Event{Timestamp: ev.Timestamp, Message: c.Buf[ev.Start:ev.End], Size: ev.Size}
		if !p.b.Fits(e) {
			st.flush(ctx, p)
			if ctx.Err() != nil {
				return
			}
		}
		q.added++
		if p.b.Len() == 0 {
			p.born = time.Now()
		}
		if err := p.b.Add(e); err != nil {
			// The encoder keeps records within limits; an event that is
			// still invalid cannot be sent by any retry.
			st.logger.Error("dropping an event CloudWatch cannot take", "bytes", ev.Size, "err", err)
			st.s.metrics.dropped.WithLabelValues(st.namespace, "invalid").Inc()
			continue
		}
		if n := len(p.tails); n == 0 || unsafe.SliceData(p.tails[n-1].tail) != unsafe.SliceData(c.Tail) {
			p.tails = append(p.tails, tailRun{from: p.b.Len() - 1, tail: c.Tail})
		}
		p.last, p.lastEv = q, c.Events[i]
	}
	if p.b.Bytes() >= batch.MaxBytes-4096 || p.b.Len() >= batch.MaxEvents {
		st.flush(ctx, p)
	}
}

// flush sends the batch until it is accepted (or dropped as invalid), then
// saves the checkpoint and releases the chunks it finished. It returns
// early only when ctx ends.
func (st *Stream) flush(ctx context.Context, p *pending) {
	if !st.s.put(ctx, st, &p.b, p.tails) {
		return
	}
	pos := filepos.Position{Path: p.last.c.Path, ID: p.last.c.ID, Offset: p.lastEv.Pos}
	if st.s.commit != nil {
		if err := st.s.commit.Commit(ctx, st.key, pos); err != nil && ctx.Err() == nil {
			st.logger.Warn("saving checkpoint failed; a restart may repeat lines", "err", err)
		}
	}
	if st.acked != nil {
		st.acked(pos, p.lastEv.Timestamp)
	}
	kept := p.chunks[:0]
	for _, q := range p.chunks {
		if q.added == len(q.c.Events) {
			st.s.release(q)
		} else {
			kept = append(kept, q)
		}
	}
	clear(p.chunks[len(kept):])
	p.chunks = kept
	p.b.Reset()
	clear(p.tails)
	p.tails = p.tails[:0]
}

// put sends one batch, creating the group and stream when missing and
// retrying every other failure but an invalid batch forever. It reports
// false when ctx ended before CloudWatch accepted the batch.
func (s *Sender) put(ctx context.Context, st *Stream, b *batch.Batch, tails []tailRun) bool {
	n := b.Len()
	bytes := b.Bytes() - n*batch.EventOverhead
	for attempt := 1; ; attempt++ {
		var f failure
		if cf := s.ensure(ctx, st); cf != nil {
			f = *cf
		} else {
			out, err := s.putOnce(ctx, st, b, tails)
			if err == nil {
				s.metrics.batches.Inc()
				s.metrics.events.WithLabelValues(st.namespace).Add(float64(n))
				s.metrics.bytes.WithLabelValues(st.namespace).Add(float64(bytes))
				s.rejected(st, out, n)
				s.unstall(st)
				return true
			}
			if ctx.Err() != nil {
				return false // shutting down: the checkpoint does not move
			}
			f = failure{class: classify(err), call: "PutLogEvents", err: err}
			s.metrics.retries.WithLabelValues(string(f.class)).Inc()
			switch f.class {
			case Invalid:
				st.logger.Error("CloudWatch rejected a batch as invalid; dropping it", "events", n, "err", err)
				s.metrics.dropped.WithLabelValues(st.namespace, "invalid").Add(float64(n))
				s.unstall(st)
				return true
			case NotFound:
				// Deleted behind our back since we made or used it.
				if cf := s.create(ctx, st); cf != nil {
					f = *cf
				} else if attempt == 1 {
					continue // created: resend at once
				}
			case awscfg.Throttled:
				s.metrics.throttles.Inc()
			}
		}
		if ctx.Err() != nil {
			return false
		}
		recovered := s.stall(st, f)
		wait := s.delay(attempt, f.err)
		st.logger.Debug("CloudWatch call failed; retrying", "class", f.class, "call", f.call, "attempt", attempt, "backoff", wait, "err", f.err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		case <-recovered:
			// Another stream got through: so may this one, now.
			t.Stop()
			attempt = 0
		}
	}
}

// putOnce makes one PutLogEvents call holding one of the MaxPuts slots.
// The request body is built inside the slot and let go with it, so bodies
// in memory never outnumber the slots, even while streams back off.
func (s *Sender) putOnce(ctx context.Context, st *Stream, b *batch.Batch, tails []tailRun) (*cloudwatchlogs.PutLogEventsOutput, error) {
	if err := s.puts.Acquire(ctx, 1); err != nil {
		return nil, fmt.Errorf("waiting to send to stream %s: %w", st.name, err)
	}
	defer s.puts.Release(1)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	start := time.Now()
	s.touch()
	defer func() {
		s.touch() // idle counts from the end of the last put
		s.metrics.putDuration.Observe(time.Since(start).Seconds())
	}()
	// Request bodies (their frames; the messages stay in the chunks)
	// come from a pool shared by all streams.
	var body *putBody
	select {
	case body = <-s.bodies:
	default:
		body = &putBody{}
	}
	body.build(st.group, st.name, b.Events, tails)
	defer func() {
		body.reset()
		// Do not keep a rare huge frame buffer.
		if cap(body.frames) <= 64*batch.MaxEvents {
			select {
			case s.bodies <- body:
			default:
			}
		}
	}()
	return s.client.put(ctx, st.group, st.name, body)
}

func (s *Sender) rejected(st *Stream, out *cloudwatchlogs.PutLogEventsOutput, n int) {
	if out == nil || out.RejectedLogEventsInfo == nil {
		return
	}
	r := out.RejectedLogEventsInfo
	count := func(reason string, k int) {
		if k <= 0 {
			return
		}
		s.metrics.rejected.WithLabelValues(st.namespace, reason).Add(float64(k))
		st.logger.Warn("CloudWatch rejected events", "reason", reason, "events", k)
	}
	if r.TooOldLogEventEndIndex != nil {
		count("too_old", int(*r.TooOldLogEventEndIndex))
	}
	if r.ExpiredLogEventEndIndex != nil {
		count("expired", int(*r.ExpiredLogEventEndIndex))
	}
	if r.TooNewLogEventStartIndex != nil {
		count("too_new", n-int(*r.TooNewLogEventStartIndex))
	}
}

// ensure creates st before its first put, unless this process created it
// or put to it already: a put to a missing stream fails (ResourceNotFound)
// and costs a call, once per new container otherwise. An existing stream
// answers ResourceAlreadyExists, which is success.
func (s *Sender) ensure(ctx context.Context, st *Stream) *failure {
	if st.seen {
		return nil
	}
	if f := s.create(ctx, st); f != nil {
		return f
	}
	st.seen = true
	return nil
}

// create makes the stream's group (once per process, with retention) and
// the stream itself; it returns the failure, if any.
func (s *Sender) create(ctx context.Context, st *Stream) *failure {
	s.mu.Lock()
	known := s.groups[st.group]
	s.mu.Unlock()
	if !known {
		if f := s.createGroup(ctx, st.group); f != nil {
			return f
		}
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	_, err := s.client.CreateLogStream(cctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(st.group), LogStreamName: aws.String(st.name)})
	cancel()
	var exists *types.ResourceAlreadyExistsException
	var missing *types.ResourceNotFoundException
	switch {
	case errors.As(err, &missing):
		// The group went away after we created it: forget it so the next
		// attempt makes it again.
		s.mu.Lock()
		delete(s.groups, st.group)
		s.mu.Unlock()
		return &failure{class: NotFound, call: "CreateLogStream", err: fmt.Errorf("creating log stream %s in %s: %w", st.name, st.group, err)}
	case err != nil && !errors.As(err, &exists):
		return &failure{class: classify(err), call: "CreateLogStream", err: fmt.Errorf("creating log stream %s in %s: %w", st.name, st.group, err)}
	}
	st.logger.Info("created log stream")
	return nil
}

func (s *Sender) createGroup(ctx context.Context, group string) *failure {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	_, err := s.client.CreateLogGroup(cctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(group)})
	var exists *types.ResourceAlreadyExistsException
	if err != nil && !errors.As(err, &exists) {
		return &failure{class: classify(err), call: "CreateLogGroup", err: fmt.Errorf("creating log group %s: %w", group, err)}
	}
	if err == nil && s.cfg.RetentionDays > 0 {
		if _, err := s.client.PutRetentionPolicy(cctx, &cloudwatchlogs.PutRetentionPolicyInput{
			LogGroupName: aws.String(group), RetentionInDays: aws.Int32(s.cfg.RetentionDays),
		}); err != nil {
			return &failure{class: classify(err), call: "PutRetentionPolicy", err: fmt.Errorf("setting retention of log group %s to %d days: %w", group, s.cfg.RetentionDays, err)}
		}
	}
	if err == nil {
		s.logger.Info("created log group", "log_group", group, "retention_days", s.cfg.RetentionDays)
	}
	s.mu.Lock()
	s.groups[group] = true
	s.mu.Unlock()
	return nil
}

// CloudWatch Logs' own classes, beside awscfg's.
const (
	// NotFound: the group or stream is missing; the Sender creates it.
	NotFound awscfg.ErrorClass = "not_found"
	// Invalid: CloudWatch calls the batch invalid; no retry can send it.
	Invalid awscfg.ErrorClass = "invalid"
)

// classify names the class of a failed CloudWatch Logs call; a call cut
// short by CallTimeout is a network error (no answer).
func classify(err error) awscfg.ErrorClass {
	if errors.Is(err, context.DeadlineExceeded) {
		return awscfg.Network
	}
	var nf *types.ResourceNotFoundException
	var invalid *types.InvalidParameterException
	var coded interface{ ErrorCode() string }
	switch {
	case errors.As(err, &nf):
		return NotFound
	case errors.As(err, &invalid):
		return Invalid
	case errors.As(err, &coded) && coded.ErrorCode() == "ResourceNotFoundException":
		return NotFound
	case errors.As(err, &coded) && coded.ErrorCode() == "InvalidParameterException":
		return Invalid
	}
	return awscfg.Classify(err)
}
