package main

import (
	"slices"
	"time"
)

// latencies summarises request durations.
type latencies struct {
	N        int
	P50, P99 time.Duration
	Max      time.Duration
}

// summarise sorts d in place and returns its percentiles (nearest rank).
func summarise(d []time.Duration) latencies {
	if len(d) == 0 {
		return latencies{}
	}
	slices.Sort(d)
	return latencies{N: len(d), P50: percentile(d, 50), P99: percentile(d, 99), Max: d[len(d)-1]}
}

// percentile is the nearest-rank percentile of sorted d: the smallest value
// with at least p% of the samples at or below it.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

// ms is a duration in milliseconds, for tables.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
