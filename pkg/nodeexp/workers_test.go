package nodeexp

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
)

// blockingCollector's Update waits for release, counting its calls.
type blockingCollector struct {
	mu      sync.Mutex
	calls   int
	release chan struct{}
}

func (b *blockingCollector) Update(ctx context.Context, ch *Sink) error {
	b.mu.Lock()
	b.calls++
	b.mu.Unlock()
	if b.release != nil {
		<-b.release
	}
	return nil
}

// runBatch hands the collectors to w as one scrape's batch and returns a
// channel per collector that receives its error once its Update returned.
func runBatch(ctx context.Context, w *workers, cs ...Collector) []chan error {
	finished := make(chan int, len(cs))
	b := &batch{ctx: ctx, jobs: make([]batchJob, len(cs))}
	done := make([]chan error, len(cs))
	runs := make([]collectorRun, len(cs))
	for i, c := range cs {
		runs[i].idx, runs[i].finished = i, finished
		b.jobs[i] = batchJob{c: c, run: &runs[i]}
		done[i] = make(chan error, 1)
	}
	w.run(b)
	go func() {
		for range cs {
			i := <-finished // sent by finish once Update returned
			done[i] <- runs[i].err
		}
	}()
	return done
}

// TestWorkers checks that batches run on reused workers, that a hung
// Update holds up neither the rest of its batch nor the next batch, that
// Stop waits for running Updates, and that batches after Stop still run.
// It runs in a synctest bubble: synctest.Wait returns once every goroutine
// is blocked, so "Stop has not returned" is checked when Stop has had every
// chance to.
func TestWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorkers()
		w.size = 2
		ctx := context.Background()
		fast := &blockingCollector{}
		for range 5 {
			for _, d := range runBatch(ctx, w, fast, fast, fast) {
				if err := <-d; err != nil {
					t.Fatal(err)
				}
			}
		}
		synctest.Wait() // the workers are idle again
		if n := w.idle.Load(); n != 2 {
			t.Errorf("%d idle workers after the batches, want 2 (size)", n)
		}
		slow := &blockingCollector{release: make(chan struct{})}
		// The hung Update holds one worker; the other runs the rest.
		first := runBatch(ctx, w, slow, fast, fast, fast)
		for _, d := range first[1:] {
			if err := <-d; err != nil {
				t.Fatal(err)
			}
		}
		// So does the next batch.
		for _, d := range runBatch(ctx, w, fast, fast) {
			if err := <-d; err != nil {
				t.Fatal(err)
			}
		}
		stopped := make(chan struct{})
		go func() { w.Stop(); close(stopped) }()
		synctest.Wait() // Stop is blocked, or has returned
		select {
		case <-stopped:
			t.Error("Stop returned while an Update was running")
		default:
		}
		close(slow.release)
		<-first[0]
		<-stopped
		if err := <-runBatch(ctx, w, fast)[0]; err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the Update started after Stop has exited
		if want := 5*3 + 3 + 2 + 1; fast.calls != want {
			t.Errorf("fast collector ran %d times, want %d", fast.calls, want)
		}
	})
}

// TestWorkersSkipAfterDeadline checks that a batch's collectors not yet
// started when the scrape stops waiting are not run.
func TestWorkersSkipAfterDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorkers()
		w.size = 1
		defer w.Stop()
		ctx, cancel := context.WithCancel(context.Background())
		slow := &blockingCollector{release: make(chan struct{})}
		later := &blockingCollector{}
		done := runBatch(ctx, w, slow, later)
		synctest.Wait() // slow runs on the only worker
		cancel()
		close(slow.release)
		if err := <-done[1]; err != context.Canceled {
			t.Errorf("collector after the deadline: %v, want context.Canceled", err)
		}
		if later.calls != 0 {
			t.Errorf("a collector was started after the scrape's deadline")
		}
	})
}
