package logship

import "github.com/prometheus/client_golang/prometheus"

// metrics are the reader side's logship_* series; the sender's are in
// package ship. namespace is the only per-container label.
type metrics struct {
	linesRead *prometheus.CounterVec
	bytesRead *prometheus.CounterVec
	filesLost *prometheus.CounterVec
	filesOpen prometheus.Gauge
	lag       *prometheus.Desc
	held      *prometheus.Desc
	a         *Agent
}

func newMetrics(reg prometheus.Registerer, a *Agent) (*metrics, error) {
	m := &metrics{
		linesRead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logship_lines_read_total", Help: "Log file lines read.",
		}, []string{"namespace"}),
		bytesRead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logship_bytes_read_total", Help: "Log file bytes read.",
		}, []string{"namespace"}),
		filesLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logship_files_lost_total", Help: "Rotated files given up before they were read to their end (compressed, deleted or held too long).",
		}, []string{"namespace"}),
		filesOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "logship_files_open", Help: "Container log files being followed.",
		}),
		lag: prometheus.NewDesc("logship_lag_seconds",
			"Per namespace, the largest age of the last accepted line among files not shipped to their end (0 when caught up).",
			[]string{"namespace"}, nil),
		held: prometheus.NewDesc("logship_deleted_open_bytes",
			"Unread bytes of deleted log files logship still holds open.", nil, nil),
		a: a,
	}
	for _, c := range []prometheus.Collector{m.linesRead, m.bytesRead, m.filesLost, m.filesOpen, m} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Describe implements prometheus.Collector for the computed series.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.lag
	ch <- m.held
}

// Collect computes lag and held bytes from the targets at scrape time.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	now := m.a.now()
	lag := map[string]float64{}
	var held int64
	m.a.mu.Lock()
	for _, t := range m.a.targets {
		ns := t.t.Namespace
		if _, ok := lag[ns]; !ok {
			lag[ns] = 0
		}
		if f := t.follower.Load(); f != nil {
			held += f.HeldBytes()
		}
		lag[ns] = max(lag[ns], t.lag(now).Seconds())
	}
	m.a.mu.Unlock()
	for ns, v := range lag {
		ch <- prometheus.MustNewConstMetric(m.lag, prometheus.GaugeValue, v, ns)
	}
	ch <- prometheus.MustNewConstMetric(m.held, prometheus.GaugeValue, float64(held))
}
