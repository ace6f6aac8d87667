package memtrim

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestStep(t *testing.T) {
	const mib = 1 << 20
	cfg := Config{Quiet: 64 << 10, Burst: mib}
	tests := []struct {
		name    string
		samples []sample // after the first, which starts the trimmer
		want    []bool
	}{
		{"idle from the start: nothing to give back",
			[]sample{{0, 0}, {1000, 0}, {2000, 0}}, []bool{false, false}},
		{"burst then quiet: one release",
			[]sample{{0, 0}, {8 * mib, 0}, {8*mib + 100, 0}, {8*mib + 200, 0}}, []bool{false, true, false}},
		{"still busy: no release until a quiet period",
			[]sample{{0, 0}, {2 * mib, 0}, {4 * mib, 0}, {6 * mib, 0}, {6 * mib, 0}}, []bool{false, false, false, true}},
		{"small work between quiet periods adds up to a burst",
			[]sample{{0, 0}, {600 << 10, 0}, {600 << 10, 0}, {1200 << 10, 0}, {1200 << 10, 0}}, []bool{false, false, false, true}},
		{"someone else forced a collection: it counts as the release",
			[]sample{{0, 0}, {8 * mib, 0}, {8 * mib, 1}, {8 * mib, 1}}, []bool{false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTrimmer(cfg, tt.samples[0])
			for i, s := range tt.samples[1:] {
				if got := tr.step(s); got != tt.want[i] {
					t.Fatalf("period %d (%+v): release %v, want %v", i+1, s, got, tt.want[i])
				}
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.Period != 2*time.Second || c.Quiet != 64<<10 || c.Burst != 1<<20 {
		t.Fatalf("defaults %+v", c)
	}
}

var sink [][]byte

// TestRunReleases checks the real runtime, driven tick by tick: after a
// burst of garbage and then a quiet period, run forces one collection and
// the free heap goes back to the OS.
func TestRunReleases(t *testing.T) {
	buf := make([]metrics.Sample, len(sampleNames))
	for i, n := range sampleNames {
		buf[i].Name = n
	}
	sampler := func() sample { return read(buf) }
	// Quiet is generous: the test binary's own goroutines allocate too.
	tr := newTrimmer(Config{Quiet: 4 << 20, Burst: 8 << 20}, sampler())
	ticks := make(chan time.Time)
	released := make(chan struct{}, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(ctx, tr, ticks, sampler, func() {
			debug.FreeOSMemory()
			released <- struct{}{}
		})
	}()
	for range 64 {
		sink = append(sink, make([]byte, 256<<10))
	}
	sink = nil           // 16 MiB of garbage since the trimmer's first sample
	ticks <- time.Time{} // the burst's period: busy, no release
	ticks <- time.Time{} // a quiet period after a burst: release
	<-released
	free := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(free)
	ticks <- time.Time{} // quiet, but nothing new to give back
	cancel()
	<-done
	if n := len(released); n != 0 {
		t.Errorf("%d more releases without a new burst", n)
	}
	if v := free[0].Value.Uint64(); v > 4<<20 {
		t.Errorf("free heap still held after the release: %d bytes", v)
	}
}
