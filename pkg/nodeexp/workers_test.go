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

// TestWorkers checks that Updates run on reused workers, that a busy
// worker does not hold up the next Update, that Stop waits for running
// Updates, and that Updates after Stop still run. It runs in a synctest
// bubble: synctest.Wait returns once every goroutine is blocked, so "Stop
// has not returned" is checked when Stop has had every chance to.
func TestWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorkers([]string{"slow", "fast"})
		run := func(name string, c Collector) chan error {
			done := make(chan error, 1)
			finished := make(chan int, 1)
			r := &collectorRun{finished: finished}
			w.update(name, c, context.Background(), r)
			go func() {
				<-finished // sent by finish once Update returned
				done <- r.err
			}()
			return done
		}
		fast := &blockingCollector{}
		for range 5 {
			if err := <-run("fast", fast); err != nil {
				t.Fatal(err)
			}
		}
		slow := &blockingCollector{release: make(chan struct{})}
		first := run("slow", slow)
		// The first Update still runs: the second gets a worker of its own.
		if err := <-run("slow", &blockingCollector{}); err != nil {
			t.Fatal(err)
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
		<-first
		<-stopped
		if err := <-run("fast", fast); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the Update started after Stop has exited
		if fast.calls != 6 {
			t.Errorf("fast collector ran %d times, want 6", fast.calls)
		}
	})
}
