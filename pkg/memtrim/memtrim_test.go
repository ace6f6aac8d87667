package memtrim

import (
	"context"
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

// TestRunReleases checks the real runtime: after a burst of garbage, Run
// forces a collection and the free heap goes back to the OS.
func TestRunReleases(t *testing.T) {
	buf := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}, {Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(buf)
	forced0 := buf[0].Value.Uint64()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// Quiet is generous: the test binary's own goroutines allocate too.
	go func() { done <- Run(ctx, Config{Period: 50 * time.Millisecond, Quiet: 4 << 20, Burst: 8 << 20}) }()
	time.Sleep(100 * time.Millisecond) // what came before Run is not its burst
	for range 64 {
		sink = append(sink, make([]byte, 256<<10))
	}
	sink = nil // 16 MiB of garbage
	deadline := time.Now().Add(10 * time.Second)
	for {
		metrics.Read(buf)
		if buf[0].Value.Uint64() > forced0 {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("Run never released the heap after a 16 MiB burst")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	metrics.Read(buf)
	if free := buf[1].Value.Uint64(); free > 4<<20 {
		t.Errorf("free heap still held after the release: %d bytes", free)
	}
}
