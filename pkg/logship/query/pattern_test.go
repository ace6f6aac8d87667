package query

import (
	"strings"
	"testing"

	"github.com/nodekit/nodekit/pkg/logship/naming"
)

func TestFilterPattern(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sel  selection
		want string
	}{
		{"everything", selection{}, ""},
		{"namespace", selection{Namespace: "shop"}, `{ $.kubernetes.namespace_name = "shop" }`},
		{"pod_prefix_container_stream", selection{Namespace: "shop", Pod: "web-7f9c*", Container: "app", Stream: "stderr"},
			`{ $.kubernetes.namespace_name = "shop" && $.kubernetes.pod_name = "web-7f9c*" && $.kubernetes.container_name = "app" && $.stream = "stderr" }`},
		{"grep_alone", selection{Grep: "connection refused"}, `{ $.log = "*connection refused*" }`},
		{"grep_unicode", selection{Pod: "api-0", Grep: "délai"}, `{ $.kubernetes.pod_name = "api-0" && $.log = "*délai*" }`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.sel.validate(); err != nil {
				t.Fatal(err)
			}
			if got := tt.sel.filterPattern(); got != tt.want {
				t.Fatalf("filterPattern = %s\nwant           %s", got, tt.want)
			}
		})
	}
}

func TestSelectionValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		sel     selection
		wantErr string
	}{
		{"ok", selection{Namespace: "kube-system", Pod: "coredns-*", Container: "coredns", Stream: "stdout", Grep: "x*y"}, ""},
		{"pod_glob_middle", selection{Pod: "web-*-abc"}, ""},
		{"pod_only_star", selection{Pod: "*"}, "invalid pod"},
		{"pod_quote", selection{Pod: `a"b`}, "invalid pod"},
		{"pod_upper", selection{Pod: "Web"}, "invalid pod"},
		{"namespace_star", selection{Namespace: "shop*"}, "invalid --namespace"},
		{"namespace_brace", selection{Namespace: "a}"}, "invalid --namespace"},
		{"container_space", selection{Container: "a b"}, "invalid --container"},
		{"stream", selection{Stream: "all"}, "invalid --stream"},
		{"grep_quote", selection{Grep: `a"b`}, "invalid --grep"},
		{"grep_backslash", selection{Grep: `a\b`}, "invalid --grep"},
		{"grep_newline", selection{Grep: "a\nb"}, "invalid --grep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.sel.validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("validate = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestStreamPrefix(t *testing.T) {
	t.Parallel()
	tmpl := naming.DefaultStream
	tests := []struct {
		name string
		tmpl string
		vals map[string]string
		want string
	}{
		{"nothing_known", tmpl, nil, ""},
		{"namespace_only", tmpl, map[string]string{"{namespace}": "shop"}, ""},
		{"pod", tmpl, map[string]string{"{pod}": "web-0"}, "web-0_"},
		{"pod_namespace", tmpl, map[string]string{"{pod}": "web-0", "{namespace}": "shop"}, "web-0_shop_"},
		{"pod_namespace_container", tmpl, map[string]string{"{pod}": "web-0", "{namespace}": "shop", "{container}": "app"}, "web-0_shop_app-"},
		{"pod_glob", tmpl, map[string]string{"{pod}": "web-7f9c*", "{namespace}": "shop"}, "web-7f9c"},
		{"pod_glob_middle", tmpl, map[string]string{"{pod}": "web-*-x"}, "web-"},
		{"literal_first", "k8s/{namespace}/{pod}", map[string]string{"{namespace}": "shop"}, "k8s/shop/"},
		{"all_known", "{namespace}.{container}", map[string]string{"{namespace}": "a", "{container}": "b"}, "a.b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := streamPrefix(tt.tmpl, tt.vals); got != tt.want {
				t.Fatalf("streamPrefix(%q, %v) = %q, want %q", tt.tmpl, tt.vals, got, tt.want)
			}
		})
	}
}

func TestExpandGroup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, tmpl string
		vals       map[string]string
		want, err  string
	}{
		{"default", naming.DefaultGroup, map[string]string{"{cluster}": "prod"}, "/aws/containerinsights/prod/application", ""},
		{"plain", "/my/group", nil, "/my/group", ""},
		{"per_namespace", "/k8s/{cluster}/{namespace}", map[string]string{"{cluster}": "c", "{namespace}": "shop"}, "/k8s/c/shop", ""},
		{"missing", "/k8s/{cluster}/{namespace}", map[string]string{"{cluster}": "c"}, "", "needs {namespace}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := expandGroup(tt.tmpl, tt.vals)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("expandGroup = %q, %v; want error %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("expandGroup = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"web-1", "web-1", true},
		{"web-1", "web-12", false},
		{"web*", "web-7f9c", true},
		{"web*", "api-0", false},
		{"*timeout*", "upstream timeout here", true},
		{"*timeout*", "timeout", true},
		{"*timeout*", "time out", false},
		{"web-*-def34", "web-7f9c-def34", true},
		{"web-*-def34", "web-7f9c-def345", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "acb", false},
		{"*", "", true},
		{"ab*ba", "aba", false},
	} {
		if got := globMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}
