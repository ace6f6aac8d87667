package deploy

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodekit/nodekit/test/helm"
)

const chartDir = "helm/nodekit"

// helmTemplate renders the chart as `helm install --namespace nodekit`
// would, with args adding --set or --values.
func helmTemplate(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	return helm.Run(t.Context(), t.TempDir(), append([]string{"template", "nodekit", chartDir, "--namespace", "nodekit"}, args...)...)
}

// objects decodes a multi-document YAML stream into generic objects keyed
// by kind/namespace/name.
func objects(t *testing.T, data []byte) map[string]map[string]any {
	t.Helper()
	docs, err := Documents(data)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, doc := range docs {
		var obj map[string]any
		if err := json.Unmarshal(doc, &obj); err != nil {
			t.Fatal(err)
		}
		meta, _ := obj["metadata"].(map[string]any)
		key := fmt.Sprintf("%v/%v/%v", obj["kind"], meta["namespace"], meta["name"])
		if _, dup := out[key]; dup {
			t.Errorf("%s twice", key)
		}
		out[key] = obj
	}
	return out
}

// diff lists where a and b differ, one line per JSON path.
func diff(path string, a, b any) []string {
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: %s vs %s", path, short(a), short(b))}
		}
		keys := map[string]bool{}
		for k := range a {
			keys[k] = true
		}
		for k := range b {
			keys[k] = true
		}
		var out []string
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			av, aok := a[k]
			bv, bok := b[k]
			switch {
			case !aok:
				out = append(out, fmt.Sprintf("%s.%s: missing vs %s", path, k, short(bv)))
			case !bok:
				out = append(out, fmt.Sprintf("%s.%s: %s vs missing", path, k, short(av)))
			default:
				out = append(out, diff(path+"."+k, av, bv)...)
			}
		}
		return out
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return []string{fmt.Sprintf("%s: %s vs %s", path, short(a), short(b))}
		}
		var out []string
		for i := range a {
			out = append(out, diff(fmt.Sprintf("%s[%d]", path, i), a[i], b[i])...)
		}
		return out
	default:
		if fmt.Sprintf("%T %v", a, a) != fmt.Sprintf("%T %v", b, b) {
			return []string{fmt.Sprintf("%s: %s vs %s", path, short(a), short(b))}
		}
		return nil
	}
}

func short(v any) string {
	data, _ := json.Marshal(v)
	if len(data) > 200 {
		return string(data[:200]) + "..."
	}
	return string(data)
}

// TestHelmChartRendersTheManifest keeps one source of truth: the chart's
// default values render exactly the objects of nodekit.yaml. Editing one
// without the other fails here, naming each field that differs.
func TestHelmChartRendersTheManifest(t *testing.T) {
	rendered, err := helmTemplate(t)
	if err != nil {
		t.Fatal(err)
	}
	got := objects(t, rendered)
	want := objects(t, readFile(t, "nodekit.yaml"))
	for _, key := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[key]
		if !ok {
			t.Errorf("the chart does not render %s", key)
			continue
		}
		for _, d := range diff(key, g, want[key]) {
			t.Errorf("chart vs nodekit.yaml: %s", d)
		}
	}
	for key := range got {
		if _, ok := want[key]; !ok {
			t.Errorf("the chart renders %s, which nodekit.yaml lacks", key)
		}
	}
	// The render is also a manifest the strict decoder and the lint accept.
	m, err := ParseManifest(rendered)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range lint(m) {
		t.Errorf("lint: %s", p)
	}
}

func TestHelmLint(t *testing.T) {
	for _, values := range [][]string{
		nil,
		{"--set", "nodeexp.enabled=false"},
		{"--set", "metaproxy.enabled=false,logship.enabled=false"},
	} {
		args := append([]string{"lint", "--strict", chartDir, "--namespace", "nodekit"}, values...)
		if out, err := helm.Run(t.Context(), t.TempDir(), args...); err != nil {
			t.Errorf("%v\n%s", err, out)
		}
	}
}

// TestHelmValues renders the chart with each setting changed and checks it
// reaches the objects, and through the ConfigMap and the kubelet's $(VAR)
// expansion, the agents' command lines.
func TestHelmValues(t *testing.T) {
	fields := map[string]string{"spec.nodeName": "node-1", "status.hostIP": "10.0.0.5"}
	// commandLine is a container's argv as the kubelet would run it.
	commandLine := func(t *testing.T, m *Manifest, name string) []string {
		t.Helper()
		c, ok := m.Container(name)
		if !ok {
			t.Fatalf("no container %s", name)
		}
		env, err := m.Env(c, nil, fields)
		if err != nil {
			t.Fatal(err)
		}
		var argv []string
		for _, a := range append(slices.Clone(c.Command), c.Args...) {
			argv = append(argv, Expand(a, env))
		}
		return argv
	}
	containers := func(m *Manifest) []string {
		var names []string
		for _, c := range m.DaemonSet.Spec.Template.Spec.Containers {
			names = append(names, c.Name)
		}
		return names
	}
	volumes := func(m *Manifest) []string {
		var names []string
		for _, v := range m.DaemonSet.Spec.Template.Spec.Volumes {
			names = append(names, v.Name)
		}
		return names
	}
	tests := []struct {
		name   string
		values string
		check  func(t *testing.T, m *Manifest)
	}{
		{
			name: "agent settings reach the flags",
			values: `
metaproxy: {baseRoleARN: "arn:aws:iam::999999999999:role/", defaultRole: base, hostInterface: "eni+", namespaceRestrictions: true}
logship: {clusterName: prod-eu, logGroup: "/eks/{cluster}/pods"}
`,
			check: func(t *testing.T, m *Manifest) {
				mp := strings.Join(commandLine(t, m, "metaproxy"), " ")
				for _, want := range []string{"--base-role-arn=arn:aws:iam::999999999999:role/", "--default-role=base", "--host-interface=eni+", "--namespace-restrictions=true", "--metrics-addr=10.0.0.5:9181"} {
					if !strings.Contains(mp, want) {
						t.Errorf("metaproxy command line lacks %s: %s", want, mp)
					}
				}
				ls := strings.Join(commandLine(t, m, "logship"), " ")
				for _, want := range []string{"--cluster-name=prod-eu", "--log-group=/eks/{cluster}/pods", "--node-name=node-1"} {
					if !strings.Contains(ls, want) {
						t.Errorf("logship command line lacks %s: %s", want, ls)
					}
				}
			},
		},
		{
			name:   "collectors switched and one the manifest does not name",
			values: `nodeexp: {collectors: {textfile: true, pods: false, ethtool: true}}`,
			check: func(t *testing.T, m *Manifest) {
				argv := commandLine(t, m, "nodeexp")
				for _, want := range []string{"--collector.textfile=true", "--collector.pods=false", "--collector.ethtool=true", "--collector.arp=true"} {
					if !slices.Contains(argv, want) {
						t.Errorf("nodeexp command line lacks %s: %v", want, argv)
					}
				}
			},
		},
		{
			name:   "nodeexp off for a cluster keeping its node_exporter",
			values: `nodeexp: {enabled: false}`,
			check: func(t *testing.T, m *Manifest) {
				if got := containers(m); !slices.Equal(got, []string{"metaproxy", "logship"}) {
					t.Errorf("containers %v", got)
				}
				if got := volumes(m); !slices.Equal(got, []string{"xtables-lock", "varlog", "logship-state"}) {
					t.Errorf("volumes %v", got)
				}
				for k := range m.ConfigMap.Data {
					if strings.HasPrefix(k, "nodeexp.") {
						t.Errorf("ConfigMap keeps %s", k)
					}
				}
			},
		},
		{
			name:   "metaproxy alone",
			values: `{logship: {enabled: false}, nodeexp: {enabled: false}}`,
			check: func(t *testing.T, m *Manifest) {
				if got := containers(m); !slices.Equal(got, []string{"metaproxy"}) {
					t.Errorf("containers %v", got)
				}
				if got := volumes(m); !slices.Equal(got, []string{"xtables-lock"}) {
					t.Errorf("volumes %v", got)
				}
			},
		},
		{
			name:   "logship alone is the default container",
			values: `{metaproxy: {enabled: false}, nodeexp: {enabled: false}}`,
			check: func(t *testing.T, m *Manifest) {
				if got := m.DaemonSet.Spec.Template.Annotations["kubectl.kubernetes.io/default-container"]; got != "logship" {
					t.Errorf("default container %q", got)
				}
			},
		},
		{
			name: "image resources and scheduling",
			values: `
image: {repository: registry.example.com/nodekit, tag: "0.2.0", pullPolicy: Always}
logship: {resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {memory: 256Mi}}}
tolerations: [{key: dedicated, operator: Equal, value: infra, effect: NoSchedule}]
nodeSelector: {kubernetes.io/arch: arm64}
priorityClassName: ""
podAnnotations: {example.com/team: platform}
`,
			check: func(t *testing.T, m *Manifest) {
				pod := m.DaemonSet.Spec.Template.Spec
				for _, c := range pod.Containers {
					if c.Image != "registry.example.com/nodekit:0.2.0" || c.ImagePullPolicy != corev1.PullAlways {
						t.Errorf("%s: image %s, pull policy %s", c.Name, c.Image, c.ImagePullPolicy)
					}
				}
				ls, _ := m.Container("logship")
				if ls.Resources.Limits.Memory().String() != "256Mi" || ls.Resources.Requests.Cpu().String() != "100m" {
					t.Errorf("logship resources %v", ls.Resources)
				}
				if len(pod.Tolerations) != 1 || pod.Tolerations[0].Key != "dedicated" {
					t.Errorf("tolerations %v", pod.Tolerations)
				}
				if pod.NodeSelector["kubernetes.io/arch"] != "arm64" {
					t.Errorf("nodeSelector %v", pod.NodeSelector)
				}
				if pod.PriorityClassName != "" {
					t.Errorf("priorityClassName %q", pod.PriorityClassName)
				}
				if m.DaemonSet.Spec.Template.Annotations["example.com/team"] != "platform" {
					t.Errorf("pod annotations %v", m.DaemonSet.Spec.Template.Annotations)
				}
			},
		},
		{
			name:   "a digest pins the image",
			values: `image: {digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}`,
			check: func(t *testing.T, m *Manifest) {
				c, _ := m.Container("metaproxy")
				if c.Image != "ghcr.io/nodekit/nodekit@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" {
					t.Errorf("image %s", c.Image)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			values := filepath.Join(t.TempDir(), "values.yaml") // helm splits --values at commas
			if err := os.WriteFile(values, []byte(tc.values), 0o644); err != nil {
				t.Fatal(err)
			}
			rendered, err := helmTemplate(t, "--values", values)
			if err != nil {
				t.Fatal(err)
			}
			// Without the Namespace the decoder wants one of; the chart
			// renders it by default.
			m, err := ParseManifest(rendered)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, m)
		})
	}
}

// TestHelmRejectsBadValues: a values mistake is a clear error at render
// time, not a DaemonSet that crash-loops on every node.
func TestHelmRejectsBadValues(t *testing.T) {
	tests := []struct {
		name, values, want string
	}{
		{"every agent off", `{metaproxy: {enabled: false}, logship: {enabled: false}, nodeexp: {enabled: false}}`, "enable at least one"},
		{"collector not a boolean", `nodeexp: {collectors: {textfile: "yes"}}`, "textfile"},
		{"restrictions not a boolean", `metaproxy: {namespaceRestrictions: "on"}`, "namespaceRestrictions"},
		{"empty cluster name", `logship: {clusterName: ""}`, "clusterName"},
		{"unknown key", `metaproxy: {hostInterfaces: "eni+"}`, "hostInterfaces"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			values := filepath.Join(t.TempDir(), "values.yaml") // helm splits --values at commas
			if err := os.WriteFile(values, []byte(tc.values), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := helmTemplate(t, "--values", values)
			if err == nil {
				t.Fatalf("rendered without error:\n%s", out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not mention %q: %v", tc.want, err)
			}
		})
	}
}
