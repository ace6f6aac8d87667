package nodeexp

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// workers run a scrape's collectors on a few goroutines that outlive the
// scrape, each taking the next collector not yet started until none is
// left.
//
// A goroutine starts with a 2 KiB stack, and a collector's parsing grows
// it to 16 or 32 KiB, copying it at each doubling: with a fresh goroutine
// per collector per scrape that was 6% of a scrape's CPU, so workers keep
// their grown stacks for the next scrape. There are few of them (size,
// GOMAXPROCS but at least 4) rather than one per collector: 50 idle
// workers held 1 MiB of stacks between scrapes, a twentieth of nodeexp's
// RSS, and their wake-ups kept the scheduler spinning, for no speed-up on
// a node with two or four CPUs.
//
// A scrape asks for up to size workers: idle ones take the batch, and
// when none waits (the first scrape, or workers still in an Update past an
// earlier scrape's deadline) a new worker starts. A collector that hangs
// holds one worker; the others go on with the rest of the batch. Workers
// beyond size idle ones exit. Stop ends them all; batches run afterwards
// get goroutines of their own.
type workers struct {
	size    int
	batches chan *batch // unbuffered: a send succeeds only when a worker waits
	idle    atomic.Int32
	stop    chan struct{}
	stopped atomic.Bool
	wg      sync.WaitGroup
}

// batch is one scrape's collectors; each is taken by exactly one worker.
type batch struct {
	ctx  context.Context
	next atomic.Int32
	jobs []batchJob
}

type batchJob struct {
	c   Collector
	run *collectorRun
}

func newWorkers() *workers {
	return &workers{
		size:    max(4, runtime.GOMAXPROCS(0)),
		batches: make(chan *batch),
		stop:    make(chan struct{}),
	}
}

// run starts b's Updates: c.Update(b.ctx, &run.sink) for each job, then
// run.finish with its error. It does not wait for them.
func (w *workers) run(b *batch) {
	for range min(w.size, len(b.jobs)) {
		if w.stopped.Load() {
			go b.work()
			continue
		}
		select {
		case w.batches <- b:
			continue
		default:
		}
		w.wg.Add(1)
		go w.loop(b)
	}
}

// work runs the batch's jobs not yet taken.
func (b *batch) work() {
	for {
		i := int(b.next.Add(1)) - 1
		if i >= len(b.jobs) {
			return
		}
		j := b.jobs[i]
		if err := b.ctx.Err(); err != nil {
			j.run.finish(err) // the scrape has stopped waiting: do not start
			continue
		}
		j.run.begin()
		j.run.finish(safeUpdate(j.c, b.ctx, &j.run.sink))
	}
}

func (w *workers) loop(b *batch) {
	defer w.wg.Done()
	for {
		b.work()
		b = nil // drop references to the finished scrape
		if w.idle.Add(1) > int32(w.size) {
			w.idle.Add(-1)
			return // enough workers already wait
		}
		select {
		case b = <-w.batches:
			w.idle.Add(-1)
		case <-w.stop:
			w.idle.Add(-1)
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
