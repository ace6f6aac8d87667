package creds

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodekit/nodekit/pkg/awscfg"
)

// metrics carry no role or pod labels: their cardinality would follow the cluster.
type metrics struct {
	sts        *prometheus.CounterVec
	stsLatency prometheus.Histogram
	cache      *prometheus.CounterVec
	remaining  prometheus.Histogram
	backoffs   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, c *Cache) (*metrics, error) {
	m := &metrics{
		sts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "metaproxy_sts_assume_role_total",
			Help: "STS AssumeRole calls by result: success, or the error class (throttled, server_error, network, access_denied, other).",
		}, []string{"result"}),
		stsLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "metaproxy_sts_assume_role_duration_seconds",
			Help:    "Duration of STS AssumeRole calls, SDK retries included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10),
		}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "metaproxy_credential_cache_requests_total",
			Help: "Credential lookups by result: hit, miss (STS called or joined) or backoff (refused while backing off).",
		}, []string{"result"}),
		remaining: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "metaproxy_served_credential_remaining_seconds",
			Help:    "Lifetime left on credentials when served to a pod.",
			Buckets: []float64{900, 1200, 1800, 2700, 3600, 7200, 14400, 28800, 43200},
		}),
		backoffs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "metaproxy_sts_backoff_total",
			Help: "Times a credential key entered backoff after a failed or throttled STS call.",
		}),
	}
	entries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "metaproxy_credential_cache_entries",
		Help: "Credential keys (role, external ID, session) held by the cache.",
	}, func() float64 { n, _ := c.stats(); return float64(n) })
	backingOff := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "metaproxy_sts_backoff_keys",
		Help: "Credential keys currently waiting out a backoff.",
	}, func() float64 { _, n := c.stats(); return float64(n) })
	for _, col := range []prometheus.Collector{m.sts, m.stsLatency, m.cache, m.remaining, m.backoffs, entries, backingOff} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("registering credential cache metrics: %w", err)
		}
	}
	for _, r := range []string{"success", string(awscfg.Throttled), string(awscfg.ServerError), string(awscfg.Network), string(awscfg.AccessDenied), string(awscfg.Other)} {
		m.sts.WithLabelValues(r)
	}
	for _, r := range []string{"hit", "miss", "backoff"} {
		m.cache.WithLabelValues(r)
	}
	return m, nil
}
