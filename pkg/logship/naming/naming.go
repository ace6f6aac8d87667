// Package naming holds the templates that name a container's CloudWatch
// Logs group and stream. The shipper fills them for each container it
// ships; logship query fills them as far as a selection allows, to find
// the group and narrow the search to the streams that can match. It
// depends on nothing else of logship, so the query command builds
// wherever SREs run it.
package naming

import "strings"

// The shipper's defaults (--log-group, --log-stream): Container Insights'
// group and fluent-bit's stream names, so existing dashboards and queries
// find the logs.
const (
	DefaultGroup  = "/aws/containerinsights/{cluster}/application"
	DefaultStream = "{pod}_{namespace}_{container}-{container_id}"
)

// Values are what a template's placeholders stand for.
type Values struct {
	Cluster, Node, Namespace, Pod, Container, ContainerID string
}

func (v Values) replacer() *strings.Replacer {
	return strings.NewReplacer(
		"{cluster}", v.Cluster, "{node}", v.Node, "{namespace}", v.Namespace,
		"{pod}", v.Pod, "{container}", v.Container, "{container_id}", v.ContainerID,
	)
}

// Group fills a log group template.
func Group(tmpl string, v Values) string { return v.replacer().Replace(tmpl) }

// streamCleaner replaces the characters a stream name may not hold.
var streamCleaner = strings.NewReplacer(":", "_", "*", "_")

// Stream fills a log stream template; ':' and '*', which CloudWatch does
// not allow in a stream name, become '_'.
func Stream(tmpl string, v Values) string { return streamCleaner.Replace(v.replacer().Replace(tmpl)) }
