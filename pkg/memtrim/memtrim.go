// Package memtrim hands an agent's free heap back to the OS once the agent
// has gone quiet after a burst of work.
//
// Go's scavenger returns free heap only above about 110% of the GC's heap
// goal, and that goal never drops below 4 MiB. A node agent works in bursts
// (a scrape every 15 s, a batch of credential fetches when pods start, a
// log burst) and idles in between, so without help it holds each burst's
// pages through the quiet that follows. One forced collection and release
// per quiet spell costs about a millisecond of CPU on these small heaps.
package memtrim

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Config says when the agent counts as quiet. Zero fields take defaults.
type Config struct {
	// Period is how often allocation is sampled (0: 2s). A period in
	// which less than Quiet bytes were allocated is quiet.
	Period time.Duration
	// Quiet is the allocation a quiet period stays under (0: 64 KiB):
	// timers, probes and metric reads of an idle agent.
	Quiet uint64
	// Burst is how much must have been allocated since the heap was last
	// released before it is released again (0: 1 MiB): an idle agent's
	// heap has nothing more to give back.
	Burst uint64
}

func (c Config) withDefaults() Config {
	if c.Period <= 0 {
		c.Period = 2 * time.Second
	}
	if c.Quiet == 0 {
		c.Quiet = 64 << 10
	}
	if c.Burst == 0 {
		c.Burst = 1 << 20
	}
	return c
}

// sample is what one look at the runtime finds.
type sample struct {
	allocated uint64 // bytes allocated since the process started
	forced    uint64 // forced GC cycles so far (debug.FreeOSMemory, runtime.GC)
}

// trimmer decides, from one sample per period, when to release.
type trimmer struct {
	cfg      Config
	prev     sample
	released uint64 // allocated at the last release
}

func newTrimmer(cfg Config, first sample) *trimmer {
	return &trimmer{cfg: cfg.withDefaults(), prev: first, released: first.allocated}
}

// step takes the sample at the end of a period and reports whether to
// release now.
func (t *trimmer) step(s sample) bool {
	prev := t.prev
	t.prev = s
	if s.forced != prev.forced {
		// Someone else forced a collection this period (logship does after
		// letting go of its buffers): that release counts as ours.
		t.released = s.allocated
		return false
	}
	quiet := s.allocated-prev.allocated < t.cfg.Quiet
	if !quiet || s.allocated-t.released < t.cfg.Burst {
		return false
	}
	t.released = s.allocated
	return true
}

var sampleNames = []string{"/gc/heap/allocs:bytes", "/gc/cycles/forced:gc-cycles"}

func read(buf []metrics.Sample) sample {
	metrics.Read(buf)
	var s sample
	if buf[0].Value.Kind() == metrics.KindUint64 {
		s.allocated = buf[0].Value.Uint64()
	}
	if buf[1].Value.Kind() == metrics.KindUint64 {
		s.forced = buf[1].Value.Uint64()
	}
	return s
}

// Run samples the runtime every period and, at the first quiet period
// after a burst, collects and returns the free heap to the OS. It returns
// nil when ctx ends.
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	buf := make([]metrics.Sample, len(sampleNames))
	for i, n := range sampleNames {
		buf[i].Name = n
	}
	sampler := func() sample { return read(buf) }
	tick := time.NewTicker(cfg.Period)
	defer tick.Stop()
	run(ctx, newTrimmer(cfg, sampler()), tick.C, sampler, debug.FreeOSMemory)
	return nil
}

// run is Run with its clock, its view of the runtime and its release
// given: at each tick it samples, and releases when the trimmer says so.
func run(ctx context.Context, t *trimmer, ticks <-chan time.Time, sampler func() sample, release func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		if t.step(sampler()) {
			release()
			// The release itself allocates a little; it must not read as
			// the next burst.
			t.prev = sampler()
			t.released = t.prev.allocated
		}
	}
}
