package imds

import (
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "", want: "/"},
		{in: "/latest/meta-data/", want: "/latest/meta-data/"},
		{in: "/latest/meta-data", want: "/latest/meta-data"},
		{in: "//latest///meta-data//iam/", want: "/latest/meta-data/iam/"},
		{in: "/latest/meta-data/placement/../iam/info", want: "/latest/meta-data/iam/info"},
		{in: "/latest/./meta-data/iam/security-credentials/.", want: "/latest/meta-data/iam/security-credentials/"},
		{in: "/latest/meta-data/iam/security-credentials/x/..", want: "/latest/meta-data/iam/security-credentials/"},
		{in: "/../../latest/user-data", want: "/latest/user-data"},
		{in: "/latest/meta-data/%69am/info", want: "/latest/meta-data/iam/info"},
		{in: "/latest/meta-data/iam%2Fsecurity-credentials%2F", want: "/latest/meta-data/iam/security-credentials/"},
		{in: "/latest/meta-data/%2e%2e/user-data", want: "/latest/user-data"},
		{in: "/latest/meta-data/%252e%252e/user-data", bad: true},
		{in: "/latest/meta-data/%zz", bad: true},
		{in: "/latest/meta-data/iam\\info", bad: true},
		{in: "/latest/meta-data/iam;x/info", bad: true},
		{in: "/latest/meta-data/%00", bad: true},
		{in: "latest/meta-data", bad: true},
		{in: "/" + strings.Repeat("a", 2000), bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Normalize(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("Normalize(%q) = %q, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Normalize(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		path string
		want Route
	}{
		{"/latest/api/token", Route{Class: ClassToken}},
		{"/latest/meta-data/", Route{Class: ClassProxy}},
		{"/latest/meta-data/placement/region", Route{Class: ClassProxy}},
		{"/2021-07-15/meta-data/instance-id", Route{Class: ClassProxy}},
		{"/latest/dynamic/instance-identity/document", Route{Class: ClassProxy}},
		{"/latest/dynamic/instance-identity/signature", Route{Class: ClassProxy}},
		{"/latest/dynamic/instance-identity/other", Route{Class: ClassDenied}},
		{"/latest/dynamic/fws/instance-monitoring", Route{Class: ClassNotFound}},
		{"/latest/user-data", Route{Class: ClassDenied}},
		{"/LATEST/User-Data/", Route{Class: ClassDenied}},
		{"/2009-04-04/user-data", Route{Class: ClassDenied}},
		{"/latest/meta-data/iam/", Route{Class: ClassIAM}},
		{"/latest/meta-data/iam", Route{Class: ClassIAM}},
		{"/latest/meta-data/iam/info", Route{Class: ClassIAMInfo}},
		{"/latest/meta-data/IAM/Info", Route{Class: ClassIAMInfo}},
		{"/latest/meta-data/iam/security-credentials/", Route{Class: ClassCredsList}},
		{"/latest/meta-data/iam/security-credentials", Route{Class: ClassCredsList}},
		{"/2016-09-02/meta-data/iam/security-credentials/NodeRole", Route{Class: ClassCreds, Role: "NodeRole"}},
		{"/latest/meta-data/iam/Security-Credentials/app", Route{Class: ClassCreds, Role: "app"}},
		{"/latest/meta-data/iam/security-credentials-extended/", Route{Class: ClassCredsList, Extended: true}},
		{"/latest/meta-data/iam/security-credentials-extended/app", Route{Class: ClassCreds, Role: "app", Extended: true}},
		{"/latest/meta-data/iam/security-credentials/app/extra", Route{Class: ClassDenied}},
		{"/latest/meta-data/iam/anything-else", Route{Class: ClassDenied}},
		{"/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance", Route{Class: ClassDenied}},
		{"/latest/api/token/x", Route{Class: ClassNotFound}},
		{"/latest/", Route{Class: ClassNotFound}},
		{"/", Route{Class: ClassNotFound}},
		{"/v1/meta-data/iam/info", Route{Class: ClassNotFound}},
		// Near-spellings the upstream might fold onto a sensitive name (its
		// parsing is not ours to know) never reach it.
		{"/latest/meta-data/iam /security-credentials/", Route{Class: ClassDenied}},
		{"/latest/meta-data/iam./security-credentials/", Route{Class: ClassDenied}},
		{"/latest/meta-data/.iam/info", Route{Class: ClassDenied}},
		{"/latest/meta-data/ iam/info", Route{Class: ClassDenied}},
		{"/latest/meta-data/iam\u00a0/info", Route{Class: ClassDenied}},
		{"/latest/meta-data/identity-credential\u017f/ec2/security-credentials/ec2-instance", Route{Class: ClassDenied}},
		{"/latest/meta-data/Identity-Credentials./ec2/", Route{Class: ClassDenied}},
		{"/latest/meta-data/placement/region\u0000", Route{Class: ClassDenied}},
		{"/latest/meta-data/placement/region#frag", Route{Class: ClassDenied}},
		{"/latest/dynamic/instance-identity/document ", Route{Class: ClassDenied}},
		// Real meta-data spellings still pass: MACs, tag keys, key indexes.
		{"/latest/meta-data/network/interfaces/macs/02:29:96:8f:6a:2d/subnet-id", Route{Class: ClassProxy}},
		{"/latest/meta-data/tags/instance/team_a.b-c+d=e,f@g:h", Route{Class: ClassProxy}},
		{"/latest/meta-data/public-keys/0/openssh-key", Route{Class: ClassProxy}},
		{"/latest/meta-data/ami-id", Route{Class: ClassProxy}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := Classify(tt.path); got != tt.want {
				t.Fatalf("Classify(%q) = %+v, want %+v", tt.path, got, tt.want)
			}
		})
	}
}

// FuzzNormalize checks that normalised paths are canonical and that no
// spelling of an IAM or user-data path is ever classified as proxied.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"/latest/meta-data/iam/security-credentials/", "//latest/%2e%2e/user-data", "/latest/meta-data/%69am", "/latest/./meta-data/../user-data/", "/2020-01-01/meta-data/identity-credentials/", "/latest/meta-data/iam%20/info", "/latest/meta-data/identity-credential%C5%BF/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := Normalize(in)
		if err != nil {
			return
		}
		if !strings.HasPrefix(got, "/") || strings.Contains(got, "//") || strings.Contains(got, "%") {
			t.Fatalf("Normalize(%q) = %q: not canonical", in, got)
		}
		for _, seg := range strings.Split(got, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("Normalize(%q) = %q keeps a dot segment", in, got)
			}
		}
		again, err := Normalize(got)
		if err != nil || again != got {
			t.Fatalf("Normalize not idempotent: %q -> %q -> %q, %v", in, got, again, err)
		}
		if Classify(got).Class == ClassProxy && !safeUpstream(got) {
			t.Fatalf("Classify(%q) proxies a sensitive path (from %q)", got, in)
		}
	})
}

// safeUpstream is the fuzzers' independent statement of what may reach the
// real metadata service: meta-data or dynamic, nothing under a first segment
// that contains iam or identity (unless it is the identity document), and
// only the characters real metadata paths use.
func safeUpstream(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("/+-=.,_:@", c) >= 0) {
			return false
		}
	}
	segs := strings.Split(strings.ToLower(strings.Trim(p, "/")), "/")
	if len(segs) < 2 || segs[1] != "meta-data" && segs[1] != "dynamic" {
		return false
	}
	if len(segs) > 2 && segs[1] == "meta-data" && (strings.Contains(segs[2], "iam") || strings.Contains(segs[2], "identity")) {
		return false
	}
	return true
}
