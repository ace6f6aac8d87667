package ship

import (
	"slices"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the sender's logship_* series; namespace is the only
// per-container label, to keep cardinality bounded.
type Metrics struct {
	events      *prometheus.CounterVec
	bytes       *prometheus.CounterVec
	rejected    *prometheus.CounterVec
	dropped     *prometheus.CounterVec
	retries     *prometheus.CounterVec
	batches     prometheus.Counter
	throttles   prometheus.Counter
	putDuration prometheus.Histogram
	buffered    prometheus.Gauge
	stalled     *prometheus.GaugeVec
	stalledFor  prometheus.GaugeFunc
	// sender is the Sender these metrics are of, for stalledFor.
	sender atomic.Pointer[Sender]
}

// NewMetrics registers the sender's metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logship_events_shipped_total", Help: "Log events CloudWatch accepted.",
		}, []string{"namespace"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logship_bytes_shipped_total", Help: "Bytes of log event messages CloudWatch accepted.",
		}, []string{"namespace"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logship_rejected_events_total", Help: "Events CloudWatch reported in rejectedLogEventsInfo.",
		}, []string{"namespace", "reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logship_dropped_events_total", Help: "Events given up because CloudWatch called them invalid.",
		}, []string{"namespace", "reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logship_put_retries_total", Help: "Failed PutLogEvents calls, by error class (throttled, server_error, network, access_denied, other, not_found, invalid); all but invalid are retried.",
		}, []string{"reason"}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logship_batches_total", Help: "Batches CloudWatch accepted.",
		}),
		throttles: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logship_throttles_total", Help: "PutLogEvents calls CloudWatch throttled.",
		}),
		putDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "logship_put_duration_seconds", Help: "PutLogEvents call latency, including SDK retries.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		buffered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "logship_buffered_bytes", Help: "Record bytes read but not yet accepted by CloudWatch.",
		}),
		stalled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "logship_streams_stalled", Help: "Streams whose batch waits on a failing CloudWatch Logs call, by the class of its last error; access_denied and other need an operator (see the log and /readyz).",
		}, []string{"class"}),
	}
	m.stalledFor = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "logship_stalled_seconds", Help: "How long the stream stalled longest has waited on failing CloudWatch Logs calls (0 when none is); past a minute /readyz reports CloudWatch Logs out of reach.",
	}, func() float64 {
		if s := m.sender.Load(); s != nil {
			return s.StalledFor().Seconds()
		}
		return 0
	})
	for _, c := range []prometheus.Collector{m.events, m.bytes, m.rejected, m.dropped, m.retries, m.batches, m.throttles, m.putDuration, m.buffered, m.stalled, m.stalledFor} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, c := range stallClasses {
		m.stalled.WithLabelValues(string(c))
	}
	// Born at 0, so the first failure of a class is an increase that rate()
	// and increase() see, and the dashboard's retry panel has data on a
	// node that never failed.
	for _, c := range append(slices.Clone(stallClasses), Invalid) {
		m.retries.WithLabelValues(string(c))
	}
	return m, nil
}
