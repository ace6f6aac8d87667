package role

import (
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodekit/nodekit/pkg/kube"
)

type nsMap map[string]*kube.Namespace

func (m nsMap) Get(name string) (*kube.Namespace, bool) { ns, ok := m[name]; return ns, ok }

func ns(name, allowed string) *kube.Namespace {
	n := &kube.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if allowed != "" {
		n.Annotations = map[string]string{AllowedRolesAnnotation: allowed}
	}
	return n
}

func pod(namespace, name string, annotations map[string]string) *kube.Pod {
	return &kube.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: annotations}}
}

const base = "arn:aws:iam::123456789012:role/"

func TestResolve(t *testing.T) {
	namespaces := nsMap{
		"open":    ns("open", ""),
		"glob":    ns("glob", `["app-*", "arn:aws:iam::999999999999:role/exact"]`),
		"re":      ns("re", `["app-[0-9]+", "arn:aws:iam::123456789012:role/team/.*"]`),
		"broken":  ns("broken", `not json`),
		"partial": ns("partial", `["app"]`),
	}
	tests := []struct {
		name       string
		cfg        Config
		pod        *kube.Pod
		wantARN    string
		wantName   string
		wantExtID  string
		wantErr    error
		wantDefult bool
	}{
		{name: "relative name", cfg: Config{BaseRoleARN: base}, pod: pod("a", "p", map[string]string{"iam.amazonaws.com/role": "app"}), wantARN: base + "app", wantName: "app"},
		{name: "base without slash", cfg: Config{BaseRoleARN: strings.TrimSuffix(base, "/")}, pod: pod("a", "p", map[string]string{"iam.amazonaws.com/role": "/app"}), wantARN: base + "app", wantName: "app"},
		{name: "full ARN with path", cfg: Config{}, pod: pod("a", "p", map[string]string{"iam.amazonaws.com/role": "arn:aws:iam::111111111111:role/team/x"}), wantARN: "arn:aws:iam::111111111111:role/team/x", wantName: "x"},
		{name: "default role", cfg: Config{BaseRoleARN: base, DefaultRole: "def"}, pod: pod("a", "p", nil), wantARN: base + "def", wantName: "def", wantDefult: true},
		{name: "empty annotation uses default", cfg: Config{BaseRoleARN: base, DefaultRole: "def"}, pod: pod("a", "p", map[string]string{"iam.amazonaws.com/role": " "}), wantARN: base + "def", wantName: "def", wantDefult: true},
		{name: "no role no default", cfg: Config{BaseRoleARN: base}, pod: pod("a", "p", nil), wantErr: ErrNoRole},
		{name: "relative without base", cfg: Config{}, pod: pod("a", "p", map[string]string{"iam.amazonaws.com/role": "app"}), wantErr: ErrDenied},
		{name: "not a role ARN", cfg: Config{}, pod: pod("a", "p", map[string]string{"iam.amazonaws.com/role": "arn:aws:iam::123456789012:user/bob"}), wantErr: ErrDenied},
		{name: "custom key", cfg: Config{BaseRoleARN: base, RoleKey: "x/role"}, pod: pod("a", "p", map[string]string{"x/role": "r", "iam.amazonaws.com/role": "other"}), wantARN: base + "r", wantName: "r"},
		{name: "external id", cfg: Config{BaseRoleARN: base, ExternalIDKey: "iam.amazonaws.com/external-id"}, pod: pod("a", "p", map[string]string{"iam.amazonaws.com/role": "r", "iam.amazonaws.com/external-id": "ext-1"}), wantARN: base + "r", wantName: "r", wantExtID: "ext-1"},
		{name: "bad external id", cfg: Config{BaseRoleARN: base, ExternalIDKey: "iam.amazonaws.com/external-id"}, pod: pod("a", "p", map[string]string{"iam.amazonaws.com/role": "r", "iam.amazonaws.com/external-id": "bad id!"}), wantErr: ErrDenied},
		{name: "restricted: no annotation allows default", cfg: Config{BaseRoleARN: base, DefaultRole: "def", NamespaceRestrictions: true}, pod: pod("open", "p", nil), wantARN: base + "def", wantName: "def", wantDefult: true},
		{name: "restricted: no annotation refuses others", cfg: Config{BaseRoleARN: base, DefaultRole: "def", NamespaceRestrictions: true}, pod: pod("open", "p", map[string]string{"iam.amazonaws.com/role": "app-1"}), wantErr: ErrDenied},
		{name: "restricted: unknown namespace", cfg: Config{BaseRoleARN: base, NamespaceRestrictions: true}, pod: pod("ghost", "p", map[string]string{"iam.amazonaws.com/role": "app-1"}), wantErr: ErrDenied},
		{name: "glob relative matches", cfg: Config{BaseRoleARN: base, NamespaceRestrictions: true}, pod: pod("glob", "p", map[string]string{"iam.amazonaws.com/role": "app-web"}), wantARN: base + "app-web", wantName: "app-web"},
		{name: "glob full ARN matches", cfg: Config{BaseRoleARN: base, NamespaceRestrictions: true}, pod: pod("glob", "p", map[string]string{"iam.amazonaws.com/role": "arn:aws:iam::999999999999:role/exact"}), wantARN: "arn:aws:iam::999999999999:role/exact", wantName: "exact"},
		{name: "glob other account refused", cfg: Config{BaseRoleARN: base, NamespaceRestrictions: true}, pod: pod("glob", "p", map[string]string{"iam.amazonaws.com/role": "arn:aws:iam::999999999999:role/app-x"}), wantErr: ErrDenied},
		{name: "glob whole ARN only", cfg: Config{BaseRoleARN: base, NamespaceRestrictions: true}, pod: pod("partial", "p", map[string]string{"iam.amazonaws.com/role": "app-admin"}), wantErr: ErrDenied},
		{name: "glob is literal for dots", cfg: Config{BaseRoleARN: base, NamespaceRestrictions: true}, pod: pod("partial", "p", map[string]string{"iam.amazonaws.com/role": "app"}), wantARN: base + "app", wantName: "app"},
		{name: "regexp matches", cfg: Config{BaseRoleARN: base, NamespaceRestrictions: true, RestrictionFormat: MatchRegexp}, pod: pod("re", "p", map[string]string{"iam.amazonaws.com/role": "app-42"}), wantARN: base + "app-42", wantName: "app-42"},
		{name: "regexp anchored", cfg: Config{BaseRoleARN: base, NamespaceRestrictions: true, RestrictionFormat: MatchRegexp}, pod: pod("re", "p", map[string]string{"iam.amazonaws.com/role": "app-42x"}), wantErr: ErrDenied},
		{name: "regexp full ARN", cfg: Config{BaseRoleARN: base, NamespaceRestrictions: true, RestrictionFormat: MatchRegexp}, pod: pod("re", "p", map[string]string{"iam.amazonaws.com/role": "team/deep"}), wantARN: base + "team/deep", wantName: "deep"},
		{name: "broken annotation refuses", cfg: Config{BaseRoleARN: base, NamespaceRestrictions: true}, pod: pod("broken", "p", map[string]string{"iam.amazonaws.com/role": "app-1"}), wantErr: ErrDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.cfg.RoleKey == "" {
				tt.cfg.RoleKey = "iam.amazonaws.com/role"
			}
			p, err := New(tt.cfg, namespaces)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			got, err := p.Resolve(tt.pod)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Resolve error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if got.ARN != tt.wantARN || got.Name != tt.wantName || got.ExternalID != tt.wantExtID || got.Default != tt.wantDefult {
				t.Errorf("Resolve = %+v, want ARN %q name %q external ID %q default %v", got, tt.wantARN, tt.wantName, tt.wantExtID, tt.wantDefult)
			}
			if got.SessionName != SessionName(tt.pod.Namespace, tt.pod.Name) {
				t.Errorf("session name %q", got.SessionName)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no role key":       {},
		"bad format":        {RoleKey: "k", RestrictionFormat: "fuzzy"},
		"bad default":       {RoleKey: "k", DefaultRole: "arn:aws:s3:::bucket"},
		"relative, no base": {RoleKey: "k", DefaultRole: "def"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(cfg, nsMap{}); err == nil {
				t.Fatal("New accepted a bad config")
			}
			if err := cfg.Validate(); err == nil {
				t.Fatal("Validate accepted a bad config")
			}
		})
	}
	good := Config{RoleKey: "k", BaseRoleARN: "arn:aws:iam::123456789012:role", DefaultRole: "def", NamespaceRestrictions: true}
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate refused a good config: %v", err)
	}
	if _, err := New(good, nil); err == nil {
		t.Fatal("New accepted namespace restrictions without a namespace lister")
	}
}

func TestSessionName(t *testing.T) {
	long := strings.Repeat("x", 253)
	tests := []struct{ ns, name, want string }{
		{"default", "web-1", "default.web-1"},
		{"a", "b", "a.b"},
		{"ns", "pod:with/odd chars", "ns.pod_with_odd_chars"},
	}
	for _, tt := range tests {
		if got := SessionName(tt.ns, tt.name); got != tt.want {
			t.Errorf("SessionName(%q, %q) = %q, want %q", tt.ns, tt.name, got, tt.want)
		}
	}
	a, b := SessionName("ns", long+"a"), SessionName("ns", long+"b")
	if len(a) != 64 || len(b) != 64 || a == b {
		t.Errorf("long names: %q (%d) and %q (%d): want 64 chars each and distinct", a, len(a), b, len(b))
	}
	for _, r := range a {
		if !sessionChar(r) {
			t.Errorf("session name %q has %q outside STS's alphabet", a, r)
		}
	}
}

func FuzzSessionName(f *testing.F) {
	f.Add("default", "web")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, namespace, name string) {
		s := SessionName(namespace, name)
		if len(s) < 2 || len(s) > 64 {
			t.Fatalf("SessionName(%q, %q) = %q: length %d", namespace, name, s, len(s))
		}
		for _, r := range s {
			if !sessionChar(r) {
				t.Fatalf("SessionName(%q, %q) = %q has %q", namespace, name, s, r)
			}
		}
	})
}
