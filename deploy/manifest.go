// Package deploy holds what installs nodekit on a cluster: nodekit.yaml (the
// one manifest), monitoring/ (ServiceMonitor, PrometheusRule, Grafana
// dashboard) and image/ (the container image's one definition and its
// builder). Its Go code reads those files back for the tests that keep
// them honest: the manifest decoded strictly into typed
// Kubernetes objects, the containers' command lines as the kubelet would
// expand them, and the metric names the alerts and the dashboard query.
package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Manifest is nodekit.yaml decoded: exactly one object of each kind.
type Manifest struct {
	Namespace          *corev1.Namespace
	ServiceAccount     *corev1.ServiceAccount
	ClusterRole        *rbacv1.ClusterRole
	ClusterRoleBinding *rbacv1.ClusterRoleBinding
	ConfigMap          *corev1.ConfigMap
	DaemonSet          *appsv1.DaemonSet
}

// Documents splits a multi-document YAML stream into its non-empty
// documents, each converted to JSON.
func Documents(data []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("splitting YAML documents: %w", err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("converting YAML document %d to JSON: %w", len(docs)+1, err)
		}
		docs = append(docs, js)
	}
}

// ParseManifest decodes nodekit.yaml. Unknown fields, unexpected kinds and
// missing or repeated kinds are errors, so a typo cannot pass silently.
func ParseManifest(data []byte) (*Manifest, error) {
	docs, err := Documents(data)
	if err != nil {
		return nil, err
	}
	m := &Manifest{}
	for i, doc := range docs {
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, fmt.Errorf("document %d: reading kind: %w", i+1, err)
		}
		var dst any
		switch meta.APIVersion + "/" + meta.Kind {
		case "v1/Namespace":
			dst = set(&m.Namespace)
		case "v1/ServiceAccount":
			dst = set(&m.ServiceAccount)
		case "rbac.authorization.k8s.io/v1/ClusterRole":
			dst = set(&m.ClusterRole)
		case "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
			dst = set(&m.ClusterRoleBinding)
		case "v1/ConfigMap":
			dst = set(&m.ConfigMap)
		case "apps/v1/DaemonSet":
			dst = set(&m.DaemonSet)
		default:
			return nil, fmt.Errorf("document %d: unexpected %s %s", i+1, meta.APIVersion, meta.Kind)
		}
		if dst == nil {
			return nil, fmt.Errorf("document %d: a second %s", i+1, meta.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, dst); err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i+1, meta.Kind, err)
		}
	}
	if m.Namespace == nil || m.ServiceAccount == nil || m.ClusterRole == nil || m.ClusterRoleBinding == nil || m.ConfigMap == nil || m.DaemonSet == nil {
		return nil, fmt.Errorf("manifest lacks one of Namespace, ServiceAccount, ClusterRole, ClusterRoleBinding, ConfigMap, DaemonSet")
	}
	return m, nil
}

// set allocates *p and returns it, or an untyped nil when *p was already set.
func set[T any](p **T) any {
	if *p != nil {
		return nil
	}
	*p = new(T)
	return *p
}

// Container returns the DaemonSet's container called name.
func (m *Manifest) Container(name string) (corev1.Container, bool) {
	for _, c := range m.DaemonSet.Spec.Template.Spec.Containers {
		if c.Name == name {
			return c, true
		}
	}
	return corev1.Container{}, false
}

// Env resolves a container's environment as the kubelet would: literal
// values, keys of the manifest's ConfigMap (with overrides taking
// precedence over its data), and downward-API fields from fields (keyed by
// field path, e.g. "spec.nodeName"). Anything else is an error.
func (m *Manifest) Env(c corev1.Container, overrides, fields map[string]string) (map[string]string, error) {
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = Expand(e.Value, env)
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			if ref.Name != m.ConfigMap.Name {
				return nil, fmt.Errorf("container %s env %s: ConfigMap %q is not the manifest's %q", c.Name, e.Name, ref.Name, m.ConfigMap.Name)
			}
			v, ok := overrides[ref.Key]
			if !ok {
				v, ok = m.ConfigMap.Data[ref.Key]
			}
			if !ok {
				return nil, fmt.Errorf("container %s env %s: ConfigMap %s has no key %q", c.Name, e.Name, ref.Name, ref.Key)
			}
			env[e.Name] = v
		case e.ValueFrom.FieldRef != nil:
			v, ok := fields[e.ValueFrom.FieldRef.FieldPath]
			if !ok {
				return nil, fmt.Errorf("container %s env %s: no value for field %s", c.Name, e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
			env[e.Name] = v
		default:
			return nil, fmt.Errorf("container %s env %s: unsupported source", c.Name, e.Name)
		}
	}
	return env, nil
}

// Expand replaces $(VAR) references with env's values the way the kubelet
// expands command and args: $$ is a literal $, and a reference to an
// unknown variable is left as written.
func Expand(s string, env map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := env[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// stripComments drops whole-line comments, so a document of comments only
// counts as empty.
func stripComments(doc []byte) []byte {
	var out [][]byte
	for line := range bytes.SplitSeq(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line)
		}
	}
	return bytes.Join(out, []byte("\n"))
}
