package prometheus

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/nodekit/nodekit/deploy"
)

// host runs Prometheus in the test's own network namespace; it listens and
// scrapes on loopback only.
type host struct{}

func (host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}

func (host) HTTPClient() *http.Client { return &http.Client{Timeout: 10 * time.Second} }

// freeLoopbackAddr returns a loopback address nothing listens on now, for
// a server that cannot hand back its own listener.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServiceMonitorLabels scrapes a stand-in for each agent with the
// configuration FromServiceMonitor makes of deploy/monitoring's
// ServiceMonitor and checks the labels the real Prometheus gives the
// series: the job names, node and instance = the node name, and the
// Operator's namespace, service, pod, container and endpoint.
func TestServiceMonitorLabels(t *testing.T) {
	if _, err := Binary(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../../deploy/monitoring/servicemonitor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	svc, sm, err := deploy.ParseServiceMonitor(data)
	if err != nil {
		t.Fatal(err)
	}
	containers := map[string]string{"mp-metrics": "metaproxy", "ls-metrics": "logship", "ne-metrics": "nodeexp"}
	endpoints := map[string][]Endpoint{}
	for port, container := range containers {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// A series of the node and one naming a workload pod, as
			// nodeexp's node_* and nodeexp_pod_* do.
			fmt.Fprintf(w, "# TYPE stand_in gauge\nstand_in{agent=%q} 1\n", container)
			fmt.Fprintf(w, "# TYPE stand_in_pod gauge\nstand_in_pod{agent=%q,namespace=\"shop\",pod=\"web\",container=\"app\"} 1\n", container)
		}))
		t.Cleanup(srv.Close)
		endpoints[port] = []Endpoint{{Address: strings.TrimPrefix(srv.URL, "http://"), Node: "node-a", Pod: "nodekit-abcde", Container: container}}
	}
	jobs, err := FromServiceMonitor(svc, sm, endpoints, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(t.Context(), Options{
		Netns:      host{},
		ListenAddr: freeLoopbackAddr(t),
		Dir:        t.TempDir(),
		Config: Config{
			Global:        GlobalConfig{ScrapeInterval: "1s", EvaluationInterval: "1s"},
			ScrapeConfigs: jobs,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	want := map[string]model.LabelSet{
		"metaproxy": {"job": "nodekit-metaproxy", "endpoint": "mp-metrics"},
		"logship":   {"job": "nodekit-logship", "endpoint": "ls-metrics"},
		"nodeexp":   {"job": "node-exporter", "endpoint": "ne-metrics"},
	}
	var got model.Vector
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		v, _, _, err := s.API().Query(t.Context(), "stand_in", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if got, _ = v.(model.Vector); len(got) == len(want) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(got) != len(want) {
		t.Fatalf("series %v, want one per agent\n%s", got, s.Output())
	}
	// A workload pod's labels survive the Operator's target labels of the
	// same names (honorLabels), instead of becoming exported_*.
	v, _, _, err := s.API().Query(t.Context(), "stand_in_pod", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pods, _ := v.(model.Vector)
	if len(pods) != len(want) {
		t.Errorf("stand_in_pod: %v, want one per agent", pods)
	}
	for _, sample := range pods {
		m := sample.Metric
		if m["namespace"] != "shop" || m["pod"] != "web" || m["container"] != "app" || m["exported_namespace"] != "" || m["node"] != "node-a" {
			t.Errorf("a workload pod's series: %v, want namespace=shop, pod=web, container=app and the node's labels", m)
		}
	}
	for _, sample := range got {
		agent := string(sample.Metric["agent"])
		w := want[agent].Clone()
		w["container"] = model.LabelValue(agent)
		w["node"], w["instance"] = "node-a", "node-a"
		w["namespace"], w["service"], w["pod"] = "nodekit", "nodekit", "nodekit-abcde"
		w["agent"], w["__name__"] = model.LabelValue(agent), "stand_in"
		if !sample.Metric.Equal(model.Metric(w)) {
			t.Errorf("%s: labels %v, want %v", agent, sample.Metric, w)
		}
	}
}

// TestStartRejectsBadConfig: a configuration Prometheus would refuse fails
// Start with promtool's reason, before any process starts.
func TestStartRejectsBadConfig(t *testing.T) {
	_, err := Start(t.Context(), Options{
		Netns: host{}, ListenAddr: freeLoopbackAddr(t), Dir: t.TempDir(),
		Config: Config{
			Global:        GlobalConfig{ScrapeInterval: "1s", EvaluationInterval: "1s"},
			ScrapeConfigs: []ScrapeConfig{{JobName: "x", StaticConfigs: []StaticConfig{{Targets: []string{"127.0.0.1:1"}}}, RelabelConfigs: []RelabelConfig{{Action: "explode"}}}},
		},
	})
	if err == nil || !strings.Contains(err.Error(), "explode") {
		t.Errorf("Start with an unknown relabel action: %v", err)
	}
}
