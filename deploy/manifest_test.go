package deploy

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// containerPolicy is what each container may have beyond the common rules.
type containerPolicy struct {
	// caps may be added to the securityContext (after dropping ALL).
	caps []corev1.Capability
	// root allows uid 0 (with the capabilities above only).
	root bool
	// writable names the one volume the container may mount read-write.
	writable string
}

var policies = map[string]containerPolicy{
	"metaproxy": {caps: []corev1.Capability{"NET_ADMIN", "NET_RAW"}, root: true},
	"logship":   {root: true, writable: "logship-state"},
	"nodeexp":   {},
}

func loadManifest(t *testing.T) *Manifest {
	t.Helper()
	data, err := os.ReadFile("nodekit.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		t.Fatalf("parsing nodekit.yaml: %v", err)
	}
	return m
}

// lint returns every way m departs from the least-privilege rules of
// issue 6. It is a function of its own so that TestLintCatches can prove
// each rule fires.
func lint(m *Manifest) []string {
	var p []string
	bad := func(format string, a ...any) { p = append(p, fmt.Sprintf(format, a...)) }

	// RBAC: get/list/watch on pods and namespaces, nothing else.
	for _, r := range m.ClusterRole.Rules {
		if len(r.NonResourceURLs) > 0 || len(r.ResourceNames) > 0 {
			bad("ClusterRole rule %v: only plain resource rules are allowed", r)
		}
		if !slices.Equal(r.APIGroups, []string{""}) {
			bad("ClusterRole rule: apiGroups %q, want only the core group", r.APIGroups)
		}
		for _, res := range r.Resources {
			if res != "pods" && res != "namespaces" {
				bad("ClusterRole grants resource %q", res)
			}
		}
		for _, v := range r.Verbs {
			if v != "get" && v != "list" && v != "watch" {
				bad("ClusterRole grants verb %q", v)
			}
		}
	}
	b := m.ClusterRoleBinding
	if b.RoleRef.Kind != "ClusterRole" || b.RoleRef.Name != m.ClusterRole.Name || len(b.Subjects) != 1 ||
		b.Subjects[0].Kind != "ServiceAccount" || b.Subjects[0].Name != m.ServiceAccount.Name || b.Subjects[0].Namespace != m.ServiceAccount.Namespace {
		bad("ClusterRoleBinding must bind only ClusterRole %s to ServiceAccount %s/%s", m.ClusterRole.Name, m.ServiceAccount.Namespace, m.ServiceAccount.Name)
	}

	ds := m.DaemonSet
	pod := ds.Spec.Template.Spec
	if pod.ServiceAccountName != m.ServiceAccount.Name {
		bad("DaemonSet runs as ServiceAccount %q, want %q", pod.ServiceAccountName, m.ServiceAccount.Name)
	}
	if !pod.HostNetwork {
		bad("hostNetwork must be true: metaproxy DNATs on the node")
	}
	if pod.HostPID || pod.HostIPC {
		bad("hostPID/hostIPC are not needed")
	}
	if pod.PriorityClassName != "system-node-critical" {
		bad("priorityClassName %q, want system-node-critical", pod.PriorityClassName)
	}
	if !slices.ContainsFunc(pod.Tolerations, func(t corev1.Toleration) bool {
		return t.Operator == corev1.TolerationOpExists && t.Key == "" && t.Effect == ""
	}) {
		bad("no toleration of every taint (operator: Exists, no key, no effect)")
	}
	if ds.Spec.UpdateStrategy.Type != "RollingUpdate" {
		bad("updateStrategy %q, want RollingUpdate", ds.Spec.UpdateStrategy.Type)
	}
	if sc := pod.SecurityContext; sc == nil || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		bad("pod seccompProfile must be RuntimeDefault")
	}
	if pod.TerminationGracePeriodSeconds == nil {
		bad("terminationGracePeriodSeconds must be set")
	}

	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
		if v.HostPath == nil {
			bad("volume %s is not a hostPath; only hostPath volumes are expected", v.Name)
		}
	}
	var names []string
	image := ""
	for _, c := range pod.Containers {
		names = append(names, c.Name)
		pol, known := policies[c.Name]
		if !known {
			bad("unexpected container %q", c.Name)
			continue
		}
		if image == "" {
			image = c.Image
		} else if c.Image != image {
			bad("container %s: image %s differs from %s: one image, three entrypoints", c.Name, c.Image, image)
		}
		for _, e := range []struct{ name, field string }{{"NODE_NAME", "spec.nodeName"}, {"HOST_IP", "status.hostIP"}} {
			if !slices.ContainsFunc(c.Env, func(v corev1.EnvVar) bool {
				return v.Name == e.name && v.ValueFrom != nil && v.ValueFrom.FieldRef != nil && v.ValueFrom.FieldRef.FieldPath == e.field
			}) {
				bad("container %s: env %s must come from the downward API field %s", c.Name, e.name, e.field)
			}
		}
		p = append(p, lintProbes(c)...)
		p = append(p, lintResources(c)...)
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
			bad("container %s: no preStop hook keeping it in service while it drains", c.Name)
		} else if sl := c.Lifecycle.PreStop.Sleep; sl != nil && pod.TerminationGracePeriodSeconds != nil &&
			sl.Seconds+10 > *pod.TerminationGracePeriodSeconds {
			// The grace period covers the hook and then the agent's own
			// shutdown; a hook eating it all means SIGKILL mid-drain.
			bad("container %s: preStop sleeps %ds of a %ds grace period; leave the agent 10s to shut down", c.Name, sl.Seconds, *pod.TerminationGracePeriodSeconds)
		}
		p = append(p, lintSecurity(c, pol)...)
		for _, vm := range c.VolumeMounts {
			v, ok := volumes[vm.Name]
			if !ok {
				bad("container %s mounts unknown volume %s", c.Name, vm.Name)
				continue
			}
			if v.HostPath != nil && !vm.ReadOnly && vm.Name != pol.writable {
				bad("container %s mounts hostPath %s read-write", c.Name, v.HostPath.Path)
			}
			if vm.MountPropagation != nil && *vm.MountPropagation == corev1.MountPropagationBidirectional {
				bad("container %s: Bidirectional mount propagation needs privileged", c.Name)
			}
		}
	}
	if !slices.Equal(names, []string{"metaproxy", "logship", "nodeexp"}) {
		bad("containers %v, want metaproxy, logship, nodeexp", names)
	}
	if len(pod.InitContainers) > 0 || len(pod.EphemeralContainers) > 0 {
		bad("init or ephemeral containers escape these checks")
	}
	return p
}

func lintProbes(c corev1.Container) []string {
	var p []string
	ports := map[string]bool{}
	for _, cp := range c.Ports {
		ports[cp.Name] = true
	}
	probe := func(kind string, pr *corev1.Probe, path string) bool {
		switch {
		case pr == nil:
			p = append(p, fmt.Sprintf("container %s: no %s probe", c.Name, kind))
		case pr.HTTPGet == nil || pr.HTTPGet.Path != path:
			p = append(p, fmt.Sprintf("container %s: %s probe must GET %s on the ops endpoint", c.Name, kind, path))
		case !ports[pr.HTTPGet.Port.String()]:
			p = append(p, fmt.Sprintf("container %s: %s probe port %s is not a named container port", c.Name, kind, pr.HTTPGet.Port.String()))
		default:
			return true
		}
		return false
	}
	ready := probe("readiness", c.ReadinessProbe, "/readyz")
	live := probe("liveness", c.LivenessProbe, "/healthz")
	if ready && live {
		r, l := c.ReadinessProbe, c.LivenessProbe
		// Zero means the API default (period 10 s, threshold 3).
		or := func(v, d int32) int32 {
			if v == 0 {
				return d
			}
			return v
		}
		rWindow := or(r.PeriodSeconds, 10) * or(r.FailureThreshold, 3)
		lWindow := or(l.PeriodSeconds, 10) * or(l.FailureThreshold, 3)
		if or(l.PeriodSeconds, 10) <= or(r.PeriodSeconds, 10) || lWindow <= rWindow {
			p = append(p, fmt.Sprintf("container %s: liveness (every %ds, %ds to fail) must be slower than readiness (every %ds, %ds to fail)",
				c.Name, or(l.PeriodSeconds, 10), lWindow, or(r.PeriodSeconds, 10), rWindow))
		}
	}
	return p
}

func lintResources(c corev1.Container) []string {
	var p []string
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := c.Resources.Requests[name]; !ok || q.IsZero() {
			p = append(p, fmt.Sprintf("container %s: no %s request", c.Name, name))
		}
	}
	limit, ok := c.Resources.Limits[corev1.ResourceMemory]
	if !ok || limit.IsZero() {
		p = append(p, fmt.Sprintf("container %s: no memory limit", c.Name))
	} else if req, ok := c.Resources.Requests[corev1.ResourceMemory]; ok && req.Cmp(limit) > 0 {
		p = append(p, fmt.Sprintf("container %s: memory request %s above limit %s", c.Name, req.String(), limit.String()))
	}
	return p
}

func lintSecurity(c corev1.Container, pol containerPolicy) []string {
	var p []string
	bad := func(format string, a ...any) {
		p = append(p, fmt.Sprintf("container %s: ", c.Name)+fmt.Sprintf(format, a...))
	}
	sc := c.SecurityContext
	if sc == nil {
		bad("no securityContext")
		return p
	}
	if sc.Privileged != nil && *sc.Privileged {
		bad("privileged")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		bad("allowPrivilegeEscalation must be false")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		bad("readOnlyRootFilesystem must be true")
	}
	if sc.ProcMount != nil && *sc.ProcMount != corev1.DefaultProcMount {
		bad("procMount %s", *sc.ProcMount)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		bad("capabilities must drop ALL")
	} else {
		for _, cap := range sc.Capabilities.Add {
			if !slices.Contains(pol.caps, cap) {
				bad("adds capability %s (allowed: %v)", cap, pol.caps)
			}
		}
	}
	root := sc.RunAsUser == nil || *sc.RunAsUser == 0
	if !pol.root {
		if root || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			bad("must run as a non-root uid with runAsNonRoot")
		}
	}
	return p
}

func TestManifestLint(t *testing.T) {
	m := loadManifest(t)
	for _, problem := range lint(m) {
		t.Error(problem)
	}
}

// TestLintCatches breaks the manifest one rule at a time and checks that
// lint notices: a lint that cannot fail proves nothing.
func TestLintCatches(t *testing.T) {
	ptr := func(b bool) *bool { return &b }
	container := func(m *Manifest, name string) *corev1.Container {
		cs := m.DaemonSet.Spec.Template.Spec.Containers
		for i := range cs {
			if cs[i].Name == name {
				return &cs[i]
			}
		}
		t.Fatalf("no container %s", name)
		return nil
	}
	tests := []struct {
		name   string
		break_ func(m *Manifest)
		want   string
	}{
		{"secrets in the role", func(m *Manifest) {
			m.ClusterRole.Rules[0].Resources = append(m.ClusterRole.Rules[0].Resources, "secrets")
		}, `resource "secrets"`},
		{"a write verb", func(m *Manifest) { m.ClusterRole.Rules[0].Verbs = append(m.ClusterRole.Rules[0].Verbs, "patch") }, `verb "patch"`},
		{"no hostNetwork", func(m *Manifest) { m.DaemonSet.Spec.Template.Spec.HostNetwork = false }, "hostNetwork"},
		{"not node-critical", func(m *Manifest) { m.DaemonSet.Spec.Template.Spec.PriorityClassName = "" }, "system-node-critical"},
		{"tolerates too little", func(m *Manifest) { m.DaemonSet.Spec.Template.Spec.Tolerations = nil }, "toleration"},
		{"privileged", func(m *Manifest) { container(m, "metaproxy").SecurityContext.Privileged = ptr(true) }, "metaproxy: privileged"},
		{"writable root", func(m *Manifest) { container(m, "logship").SecurityContext.ReadOnlyRootFilesystem = nil }, "logship: readOnlyRootFilesystem"},
		{"escalation", func(m *Manifest) { container(m, "nodeexp").SecurityContext.AllowPrivilegeEscalation = ptr(true) }, "nodeexp: allowPrivilegeEscalation"},
		{"SYS_ADMIN", func(m *Manifest) {
			c := container(m, "metaproxy").SecurityContext.Capabilities
			c.Add = append(c.Add, "SYS_ADMIN")
		}, "adds capability SYS_ADMIN"},
		{"NET_ADMIN for logship", func(m *Manifest) {
			container(m, "logship").SecurityContext.Capabilities.Add = []corev1.Capability{"NET_ADMIN"}
		}, "logship: adds capability NET_ADMIN"},
		{"caps not dropped", func(m *Manifest) { container(m, "nodeexp").SecurityContext.Capabilities.Drop = nil }, "drop ALL"},
		{"nodeexp as root", func(m *Manifest) { container(m, "nodeexp").SecurityContext.RunAsUser = nil }, "nodeexp: must run as a non-root"},
		{"no readiness probe", func(m *Manifest) { container(m, "logship").ReadinessProbe = nil }, "logship: no readiness probe"},
		{"no liveness probe", func(m *Manifest) { container(m, "metaproxy").LivenessProbe = nil }, "metaproxy: no liveness probe"},
		{"liveness as fast as readiness", func(m *Manifest) {
			c := container(m, "nodeexp")
			c.LivenessProbe.PeriodSeconds, c.LivenessProbe.FailureThreshold = c.ReadinessProbe.PeriodSeconds, c.ReadinessProbe.FailureThreshold
		}, "nodeexp: liveness"},
		{"no memory limit", func(m *Manifest) { delete(container(m, "logship").Resources.Limits, corev1.ResourceMemory) }, "logship: no memory limit"},
		{"no cpu request", func(m *Manifest) { delete(container(m, "metaproxy").Resources.Requests, corev1.ResourceCPU) }, "metaproxy: no cpu request"},
		{"request above limit", func(m *Manifest) {
			container(m, "nodeexp").Resources.Requests[corev1.ResourceMemory] = resource.MustParse("1Gi")
		}, "above limit"},
		{"writable /var/log", func(m *Manifest) { container(m, "logship").VolumeMounts[0].ReadOnly = false }, "read-write"},
		{"writable /proc", func(m *Manifest) { container(m, "nodeexp").VolumeMounts[0].ReadOnly = false }, "read-write"},
		{"no preStop", func(m *Manifest) { container(m, "logship").Lifecycle = nil }, "logship: no preStop"},
		{"preStop longer than the grace period", func(m *Manifest) {
			container(m, "metaproxy").Lifecycle.PreStop.Sleep.Seconds = 25
		}, "metaproxy: preStop sleeps 25s"},
		{"second image", func(m *Manifest) { container(m, "nodeexp").Image = "quay.io/prometheus/node-exporter" }, "one image"},
		{"hostPID", func(m *Manifest) { m.DaemonSet.Spec.Template.Spec.HostPID = true }, "hostPID"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := loadManifest(t)
			tc.break_(m)
			problems := lint(m)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("lint did not report %q; it reported %q", tc.want, problems)
			}
		})
	}
}

// TestSettings checks the ConfigMap is the one place to edit: every key is
// used by a container, every $(VAR) in the command lines is defined, and
// the kube2iam/fluent-bit settings the issue names are there.
func TestSettings(t *testing.T) {
	m := loadManifest(t)
	used := map[string]bool{}
	fields := map[string]string{"spec.nodeName": "node-1", "status.hostIP": "10.0.0.1"}
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	for _, c := range m.DaemonSet.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
				used[e.ValueFrom.ConfigMapKeyRef.Key] = true
			}
		}
		env, err := m.Env(c, nil, fields)
		if err != nil {
			t.Error(err)
			continue
		}
		for _, a := range append(slices.Clone(c.Command), c.Args...) {
			if left := ref.FindString(Expand(a, env)); left != "" {
				t.Errorf("container %s: %s in %q is not defined in its env", c.Name, left, a)
			}
		}
	}
	for key := range m.ConfigMap.Data {
		if !used[key] {
			t.Errorf("ConfigMap key %s is not used by any container", key)
		}
	}
	for _, key := range []string{
		"metaproxy.base-role-arn", "metaproxy.default-role", "metaproxy.host-interface",
		"logship.cluster-name", "logship.log-group", "nodeexp.collector.pods",
	} {
		if _, ok := m.ConfigMap.Data[key]; !ok {
			t.Errorf("ConfigMap lacks setting %s", key)
		}
	}
}

func TestParseManifestRejects(t *testing.T) {
	good, err := os.ReadFile("nodekit.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, doc, want string
	}{
		{"unknown field", strings.Replace(string(good), "hostNetwork: true", "hostNetwork: true\n      hostNetwrok: true", 1), "unknown field"},
		{"second DaemonSet", string(good) + "\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\n", "a second DaemonSet"},
		{"unexpected kind", string(good) + "\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: x}\n", "unexpected v1 Secret"},
		{"missing kind", "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n", "lacks"},
		{"garbage", "\t: [", "YAML"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseManifest([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseManifest error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "x", "HOST_IP": "10.0.0.1", "EMPTY": ""}
	tests := []struct{ in, want string }{
		{"--addr=$(HOST_IP):9181", "--addr=10.0.0.1:9181"},
		{"$(A)$(A)", "xx"},
		{"--role=$(EMPTY)", "--role="},
		{"$(MISSING)", "$(MISSING)"},
		{"$$(A)", "$(A)"},
		{"cost $5", "cost $5"},
		{"$(A", "$(A"},
		{"trailing $", "trailing $"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := Expand(tc.in, env); got != tc.want {
			t.Errorf("Expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
