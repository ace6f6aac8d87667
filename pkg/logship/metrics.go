package logship

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodekit/nodekit/pkg/logship/tail"
)

// metrics are the reader side's logship_* series; the sender's are in
// package ship. namespace is the only per-container label.
type metrics struct {
	linesRead *prometheus.CounterVec
	bytesRead *prometheus.CounterVec
	filesLost *prometheus.CounterVec
	// linesLost and bytesLost are per pod: a loss is rare, and the first
	// question about it is whose lines they were.
	linesLost *prometheus.CounterVec
	bytesLost *prometheus.CounterVec
	filesOpen prometheus.Gauge
	lag       *prometheus.Desc
	held      *prometheus.Desc
	deleted   *prometheus.Desc
	ckFailed  *prometheus.Desc
	ckFailing *prometheus.Desc
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
			Name: "logship_files_lost_total", Help: "Log files given up before they were read to their end, by reason: held_bytes and held_time (deleted by the kubelet, held open beyond --max-deleted-bytes or --max-deleted-hold; their unread lines are in logship_lost_lines_total), unopened (compressed and deleted before logship could open them, e.g. while it was not running: what they held is not counted).",
		}, []string{"namespace", "reason"}),
		linesLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logship_lost_lines_total", Help: "Log lines never read from files logship let go of (see logship_files_lost_total), per pod; counted the way shipped lines are (a line the runtime split counts once).",
		}, []string{"namespace", "pod"}),
		bytesLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logship_lost_bytes_total", Help: "Log file bytes never read from files logship let go of, per pod.",
		}, []string{"namespace", "pod"}),
		filesOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "logship_files_open", Help: "Container log files being followed.",
		}),
		lag: prometheus.NewDesc("logship_lag_seconds",
			"Per namespace, the largest age of the last accepted line among files not shipped to their end (0 when caught up).",
			[]string{"namespace"}, nil),
		held: prometheus.NewDesc("logship_deleted_open_bytes",
			"Unread bytes of deleted log files logship still holds open.", nil, nil),
		deleted: prometheus.NewDesc("logship_deleted_held_bytes",
			"Disk space of deleted log files logship holds open to read them to their end (what --max-deleted-bytes bounds).", nil, nil),
		ckFailed: prometheus.NewDesc("logship_checkpoint_write_failures_total",
			"Failed writes of the checkpoint files in --state-dir (a full disk: ENOSPC); each is retried.", nil, nil),
		ckFailing: prometheus.NewDesc("logship_checkpoint_write_failing",
			"1 while writing the checkpoints fails: shipping is paused (and /readyz is not ready) until a write succeeds.", nil, nil),
		a: a,
	}
	for _, c := range []prometheus.Collector{m.linesRead, m.bytesRead, m.filesLost, m.linesLost, m.bytesLost, m.filesOpen, m} {
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
	ch <- m.deleted
	ch <- m.ckFailed
	ch <- m.ckFailing
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
	var deleted int64
	if k := m.a.keeper.Load(); k != nil {
		deleted = k.DeletedBytes()
	}
	ch <- prometheus.MustNewConstMetric(m.deleted, prometheus.GaugeValue, float64(deleted))
	var failures uint64
	failing := 0.0
	if st := m.a.store.Load(); st != nil {
		failures = st.Failures()
		if _, _, ok := st.Failing(); ok {
			failing = 1
		}
	}
	ch <- prometheus.MustNewConstMetric(m.ckFailed, prometheus.CounterValue, float64(failures))
	ch <- prometheus.MustNewConstMetric(m.ckFailing, prometheus.GaugeValue, failing)
}

// lost counts a file t's Follower gave up.
func (m *metrics) lost(ns, pod string, l tail.Loss) {
	m.filesLost.WithLabelValues(ns, string(l.Reason)).Inc()
	if l.Counted {
		m.linesLost.WithLabelValues(ns, pod).Add(float64(l.Lines))
		m.bytesLost.WithLabelValues(ns, pod).Add(float64(l.Bytes))
	}
}
