package nodeexp

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// workers run collectors' Update calls on goroutines that outlive a
// scrape. A goroutine starts with a 2 KiB stack, and a collector's parsing
// grows it to 16 or 32 KiB, copying it at each doubling: with a fresh
// goroutine per collector per scrape that was 6% of a scrape's CPU. A
// worker keeps its grown stack for the next scrape (until the GC shrinks
// an idle one).
//
// Each collector has its own pool: usually one idle worker, which takes
// the next Update. When none is idle (the first scrape, or an Update still
// running past an earlier scrape's deadline) a new worker starts; workers
// beyond one idle per collector exit. Stop ends them all; Updates asked
// for afterwards run on goroutines of their own.
type workers struct {
	stop    chan struct{}
	stopped atomic.Bool
	wg      sync.WaitGroup
	pools   map[string]*workerPool // fixed after newWorkers
}

type workerPool struct {
	jobs chan workerJob // unbuffered: a send succeeds only when a worker waits
	idle atomic.Int32
}

type workerJob struct {
	c   Collector
	ctx context.Context
	run *collectorRun
}

func newWorkers(names []string) *workers {
	w := &workers{stop: make(chan struct{}), pools: make(map[string]*workerPool, len(names))}
	for _, n := range names {
		w.pools[n] = &workerPool{jobs: make(chan workerJob)}
	}
	return w
}

// update runs c.Update(ctx, &run.sink) on a worker of the named
// collector's pool and calls run.finish with its error when it returns.
func (w *workers) update(name string, c Collector, ctx context.Context, run *collectorRun) {
	j := workerJob{c: c, ctx: ctx, run: run}
	p := w.pools[name]
	if p != nil && !w.stopped.Load() {
		select {
		case p.jobs <- j:
			return
		default:
		}
		w.wg.Add(1)
		go w.loop(p, j)
		return
	}
	go func() { run.finish(safeUpdate(c, ctx, &run.sink)) }()
}

func (w *workers) loop(p *workerPool, j workerJob) {
	defer w.wg.Done()
	for {
		j.run.finish(safeUpdate(j.c, j.ctx, &j.run.sink))
		j = workerJob{} // drop references to the finished scrape
		if p.idle.Add(1) > 1 {
			p.idle.Add(-1)
			return // another worker already waits
		}
		select {
		case j = <-p.jobs:
			p.idle.Add(-1)
		case <-w.stop:
			p.idle.Add(-1)
			return
		}
	}
}

// PanicError is a collector's panic, recovered: a parser that indexes past
// the end of a malformed kernel file (procfs has such) fails its
// collector's scrape, not the process.
type PanicError struct {
	Value any
	Stack []byte
}

func (p *PanicError) Error() string {
	return fmt.Sprintf("collector panicked: %v\n%s", p.Value, p.Stack)
}

// safeUpdate runs c.Update, turning a panic into a *PanicError.
func safeUpdate(c Collector, ctx context.Context, sink *Sink) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return c.Update(ctx, sink)
}

// Stop ends the idle workers and waits for the busy ones to finish their
// Update.
func (w *workers) Stop() {
	if w.stopped.CompareAndSwap(false, true) {
		close(w.stop)
	}
	w.wg.Wait()
}
