package ship

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Every retry class is a series from the start, at 0: a counter born with
// its first event hides that event from rate() and increase(), and a
// dashboard panel on a node that never failed would show no data.
func TestRetriesBornAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	want := `# HELP logship_put_retries_total Failed PutLogEvents calls, by error class (throttled, server_error, network, access_denied, other, not_found, invalid); all but invalid are retried.
# TYPE logship_put_retries_total counter
logship_put_retries_total{reason="access_denied"} 0
logship_put_retries_total{reason="invalid"} 0
logship_put_retries_total{reason="network"} 0
logship_put_retries_total{reason="not_found"} 0
logship_put_retries_total{reason="other"} 0
logship_put_retries_total{reason="server_error"} 0
logship_put_retries_total{reason="throttled"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "logship_put_retries_total"); err != nil {
		t.Error(err)
	}
}
