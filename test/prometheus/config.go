package prometheus

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nodekit/nodekit/deploy"
)

// Config is the part of prometheus.yml the test bed writes.
type Config struct {
	Global        GlobalConfig   `json:"global"`
	RuleFiles     []string       `json:"rule_files,omitempty"`
	ScrapeConfigs []ScrapeConfig `json:"scrape_configs"`
}

// GlobalConfig is prometheus.yml's global section.
type GlobalConfig struct {
	ScrapeInterval     string `json:"scrape_interval"`
	ScrapeTimeout      string `json:"scrape_timeout,omitempty"`
	EvaluationInterval string `json:"evaluation_interval"`
}

// ScrapeConfig is one job.
type ScrapeConfig struct {
	JobName        string          `json:"job_name"`
	ScrapeInterval string          `json:"scrape_interval,omitempty"`
	ScrapeTimeout  string          `json:"scrape_timeout,omitempty"`
	MetricsPath    string          `json:"metrics_path,omitempty"`
	HonorLabels    bool            `json:"honor_labels,omitempty"`
	StaticConfigs  []StaticConfig  `json:"static_configs"`
	RelabelConfigs []RelabelConfig `json:"relabel_configs,omitempty"`
}

// StaticConfig is a list of targets sharing labels.
type StaticConfig struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// RelabelConfig is Prometheus' relabel_config.
type RelabelConfig struct {
	SourceLabels []string `json:"source_labels,omitempty"`
	Separator    *string  `json:"separator,omitempty"`
	TargetLabel  string   `json:"target_label,omitempty"`
	Regex        string   `json:"regex,omitempty"`
	Modulus      uint64   `json:"modulus,omitempty"`
	Replacement  *string  `json:"replacement,omitempty"`
	Action       string   `json:"action,omitempty"`
}

// Endpoint is a pod's port the ServiceMonitor would discover: what the
// Operator's kubernetes_sd_configs (role endpoints) would find on a node.
type Endpoint struct {
	// Address is host:port.
	Address string
	// Node, Pod and Container are the pod's node, name and the container
	// declaring the port.
	Node, Pod, Container string
}

// FromServiceMonitor translates a ServiceMonitor the way the Prometheus
// Operator does, with static targets standing in for Kubernetes service
// discovery: one job per endpoint, named serviceMonitor/<ns>/<name>/<i>;
// each target carries the __meta_kubernetes_* labels discovery would give
// it, then the Operator's own relabelling (keep by Service selector and port
// name; namespace, service, pod, container, job, endpoint labels) runs,
// then the endpoint's relabelings unchanged. endpoints maps a Service port
// name to the endpoints behind it. interval, when not zero, replaces the
// endpoints' intervals (a test cannot wait 30 s per sample); timeouts are
// capped to it.
func FromServiceMonitor(svc *deploy.MonitoringService, sm *deploy.ServiceMonitor, endpoints map[string][]Endpoint, interval time.Duration) ([]ScrapeConfig, error) {
	if len(sm.Spec.NamespaceSelector.MatchNames) > 0 && !slices.Contains(sm.Spec.NamespaceSelector.MatchNames, svc.Metadata.Namespace) {
		return nil, fmt.Errorf("ServiceMonitor %s selects namespaces %v, not the Service's %s", sm.Metadata.Name, sm.Spec.NamespaceSelector.MatchNames, svc.Metadata.Namespace)
	}
	for k, v := range sm.Spec.Selector.MatchLabels {
		if svc.Metadata.Labels[k] != v {
			return nil, fmt.Errorf("ServiceMonitor %s selects %s=%s; Service %s has %q", sm.Metadata.Name, k, v, svc.Metadata.Name, svc.Metadata.Labels[k])
		}
	}
	var jobs []ScrapeConfig
	for i, ep := range sm.Spec.Endpoints {
		targets := endpoints[ep.Port]
		if len(targets) == 0 {
			return nil, fmt.Errorf("endpoint %d: no targets for port %q", i, ep.Port)
		}
		job := ScrapeConfig{
			JobName:        fmt.Sprintf("serviceMonitor/%s/%s/%d", sm.Metadata.Namespace, sm.Metadata.Name, i),
			ScrapeInterval: ep.Interval,
			ScrapeTimeout:  ep.ScrapeTimeout,
			MetricsPath:    ep.Path,
			HonorLabels:    ep.HonorLabels,
		}
		if interval > 0 {
			job.ScrapeInterval = interval.String()
			if job.ScrapeTimeout != "" {
				job.ScrapeTimeout = interval.String()
			}
		}
		for _, t := range targets {
			labels := map[string]string{
				"__meta_kubernetes_namespace":               svc.Metadata.Namespace,
				"__meta_kubernetes_service_name":            svc.Metadata.Name,
				"__meta_kubernetes_endpoint_port_name":      ep.Port,
				"__meta_kubernetes_pod_name":                t.Pod,
				"__meta_kubernetes_pod_node_name":           t.Node,
				"__meta_kubernetes_pod_container_name":      t.Container,
				"__meta_kubernetes_endpoint_node_name":      t.Node,
				"__meta_kubernetes_endpoint_ready":          "true",
				"__meta_kubernetes_endpoints_name":          svc.Metadata.Name,
				"__meta_kubernetes_pod_container_port_name": ep.Port,
			}
			for k, v := range svc.Metadata.Labels {
				labels["__meta_kubernetes_service_label_"+sanitize(k)] = v
				labels["__meta_kubernetes_service_labelpresent_"+sanitize(k)] = "true"
			}
			job.StaticConfigs = append(job.StaticConfigs, StaticConfig{Targets: []string{t.Address}, Labels: labels})
		}
		// The Operator's relabelling, in its order.
		for k, v := range sm.Spec.Selector.MatchLabels {
			job.RelabelConfigs = append(job.RelabelConfigs,
				RelabelConfig{Action: "keep", SourceLabels: []string{"__meta_kubernetes_service_label_" + sanitize(k), "__meta_kubernetes_service_labelpresent_" + sanitize(k)}, Regex: "(" + v + ");true"})
		}
		job.RelabelConfigs = append(job.RelabelConfigs,
			RelabelConfig{Action: "keep", SourceLabels: []string{"__meta_kubernetes_endpoint_port_name"}, Regex: ep.Port},
			RelabelConfig{SourceLabels: []string{"__meta_kubernetes_endpoint_address_target_kind", "__meta_kubernetes_endpoint_address_target_name"}, Separator: ptr(";"), Regex: "Node;(.*)", Replacement: ptr("${1}"), TargetLabel: "node"},
			RelabelConfig{SourceLabels: []string{"__meta_kubernetes_endpoint_address_target_kind", "__meta_kubernetes_endpoint_address_target_name"}, Separator: ptr(";"), Regex: "Pod;(.*)", Replacement: ptr("${1}"), TargetLabel: "pod"},
			RelabelConfig{SourceLabels: []string{"__meta_kubernetes_namespace"}, TargetLabel: "namespace"},
			RelabelConfig{SourceLabels: []string{"__meta_kubernetes_service_name"}, TargetLabel: "service"},
			RelabelConfig{SourceLabels: []string{"__meta_kubernetes_pod_name"}, TargetLabel: "pod"},
			RelabelConfig{SourceLabels: []string{"__meta_kubernetes_pod_container_name"}, TargetLabel: "container"},
			RelabelConfig{SourceLabels: []string{"__meta_kubernetes_service_name"}, TargetLabel: "job", Replacement: ptr("${1}")},
			RelabelConfig{TargetLabel: "endpoint", Replacement: ptr(ep.Port)},
		)
		for _, r := range ep.Relabelings {
			job.RelabelConfigs = append(job.RelabelConfigs, RelabelConfig{
				SourceLabels: r.SourceLabels, Separator: r.Separator, TargetLabel: r.TargetLabel,
				Regex: r.Regex, Modulus: r.Modulus, Replacement: r.Replacement, Action: strings.ToLower(r.Action),
			})
		}
		jobs = append(jobs, job)
	}
	return jobs, nil
}

// sanitize turns a Kubernetes label name into the Prometheus label suffix
// service discovery uses.
func sanitize(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func ptr[T any](v T) *T { return &v }
