package nodeexp

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Sink receives one collector's metrics during one scrape. Send may be
// called from any goroutine of the collector; once the scrape has stopped
// waiting for the collector (its deadline passed), what is sent is
// dropped, so a collector that overruns never blocks.
//
// It replaces a channel per collector per scrape and the goroutine that
// read it: a channel hop per metric and a goroutine switch per few metrics
// were a tenth of a scrape's CPU.
type Sink struct {
	mu      sync.Mutex
	metrics []prometheus.Metric
	closed  bool
}

// NewSink returns a sink with room for n metrics, for callers that run a
// collector themselves (tests, tools).
func NewSink(n int) *Sink { return &Sink{metrics: make([]prometheus.Metric, 0, n)} }

// Send adds m to the collector's metrics for this scrape.
func (s *Sink) Send(m prometheus.Metric) {
	s.mu.Lock()
	if !s.closed {
		s.metrics = append(s.metrics, m)
	}
	s.mu.Unlock()
}

// Metrics returns what was sent so far. The sink keeps the slice; a
// caller that keeps using the sink must not modify it.
func (s *Sink) Metrics() []prometheus.Metric {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.metrics
}

// Reset empties the sink for another Update, keeping its storage.
func (s *Sink) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.metrics)
	s.metrics, s.closed = s.metrics[:0], false
}

// close returns what was sent and drops anything sent afterwards.
func (s *Sink) close() []prometheus.Metric {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.metrics
}
