package imds

import (
	"errors"
	"net/url"
	"path"
	"regexp"
	"strings"
)

// ErrBadPath: the request path cannot be normalised safely.
var ErrBadPath = errors.New("malformed metadata path")

const maxPathLen = 1024

// Normalize turns a request's escaped path into the one spelling every
// decision is made on: percent-decoded once, dot segments and repeated
// slashes removed, the trailing slash kept (IMDS lists directories with it).
// Anything that could decode to something else on a second pass (a remaining
// '%'), backslashes, semicolons and control characters are refused rather than
// guessed at.
func Normalize(escaped string) (string, error) {
	if escaped == "" {
		return "/", nil
	}
	if len(escaped) > maxPathLen {
		return "", ErrBadPath
	}
	p, err := url.PathUnescape(escaped)
	if err != nil {
		return "", ErrBadPath
	}
	if !strings.HasPrefix(p, "/") {
		return "", ErrBadPath
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c < 0x20, c == 0x7f, c == '%', c == '\\', c == ';':
			return "", ErrBadPath
		}
	}
	dir := strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..")
	clean := path.Clean(p)
	if dir && clean != "/" {
		clean += "/"
	}
	return clean, nil
}

// Class is what a normalised path asks for.
type Class int

// Path classes; each is also a metrics label (String).
const (
	ClassNotFound  Class = iota // nothing metaproxy serves: 404
	ClassDenied                 // would reveal the node's identity: 403
	ClassToken                  // PUT /latest/api/token
	ClassIAM                    // meta-data/iam/ listing
	ClassIAMInfo                // meta-data/iam/info
	ClassCredsList              // security-credentials/ (or -extended/)
	ClassCreds                  // security-credentials/<role> (or -extended/)
	ClassProxy                  // other meta-data and the identity document: upstream
)

func (c Class) String() string {
	switch c {
	case ClassDenied:
		return "denied"
	case ClassToken:
		return "token"
	case ClassIAM, ClassIAMInfo:
		return "iam"
	case ClassCredsList, ClassCreds:
		return "credentials"
	case ClassProxy:
		return "proxy"
	default:
		return "not_found"
	}
}

// Route is a classified path.
type Route struct {
	Class Class
	// Role is the role name asked for by ClassCreds, as spelt.
	Role string
	// Extended marks the security-credentials-extended variant.
	Extended bool
}

// version is "latest" or a dated API version such as 2021-07-15; dated
// versions reach the same data, so they are classified the same way.
var version = regexp.MustCompile(`^(latest|\d{4}-\d{2}-\d{2})$`)

var identityDocs = map[string]bool{"document": true, "signature": true, "pkcs7": true, "rsa2048": true}

// Classify decides what a path from Normalize is. Matching is
// case-insensitive so no spelling of a sensitive path is proxied, whatever
// the upstream's own case rules.
func Classify(normalized string) Route {
	segs := strings.Split(strings.Trim(normalized, "/"), "/")
	if len(segs) < 2 || !version.MatchString(strings.ToLower(segs[0])) {
		return Route{Class: ClassNotFound}
	}
	lower := make([]string, len(segs))
	for i, s := range segs {
		lower[i] = strings.ToLower(s)
	}
	rest := lower[2:]
	switch lower[1] {
	case "api":
		if len(rest) == 1 && rest[0] == "token" {
			return Route{Class: ClassToken}
		}
	case "user-data":
		return Route{Class: ClassDenied}
	case "meta-data":
		if len(rest) == 0 {
			return Route{Class: ClassProxy}
		}
		switch {
		case rest[0] == "iam":
			return classifyIAM(segs[3:], rest[1:])
		case strings.Contains(rest[0], "iam") || strings.Contains(rest[0], "identity"):
			// The instance's own identity credentials
			// (identity-credentials/ec2/security-credentials/ec2-instance), and
			// any near-spelling of it or of iam ("iam.", " iam"): how the real
			// service would read those is not ours to know. No other meta-data
			// category contains either word.
			return Route{Class: ClassDenied}
		}
		return proxyable(segs)
	case "dynamic":
		if len(rest) == 1 && rest[0] == "instance-identity" || len(rest) == 2 && rest[0] == "instance-identity" && identityDocs[rest[1]] {
			return proxyable(segs)
		}
		if len(rest) >= 1 && rest[0] == "instance-identity" {
			return Route{Class: ClassDenied}
		}
	}
	return Route{Class: ClassNotFound}
}

// classifyIAM handles what follows meta-data/iam; nothing under it is ever proxied.
func classifyIAM(segs, lower []string) Route {
	switch {
	case len(lower) == 0:
		return Route{Class: ClassIAM}
	case len(lower) == 1 && lower[0] == "info":
		return Route{Class: ClassIAMInfo}
	case lower[0] == "security-credentials" || lower[0] == "security-credentials-extended":
		ext := lower[0] == "security-credentials-extended"
		switch len(lower) {
		case 1:
			return Route{Class: ClassCredsList, Extended: ext}
		case 2:
			return Route{Class: ClassCreds, Role: segs[1], Extended: ext}
		}
	}
	return Route{Class: ClassDenied}
}

// proxyable lets a path go upstream only when every segment is spelt from
// the characters real metadata paths use (MACs, IPs, instance tag keys: ASCII
// letters, digits and +-=.,_:@). Whitespace, non-ASCII look-alikes (U+017F
// folds to "s") and other bytes could be folded or trimmed by the real service
// onto a path this package refuses, so they are refused rather than guessed at.
func proxyable(segs []string) Route {
	for _, s := range segs {
		for i := 0; i < len(s); i++ {
			switch c := s[i]; {
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			case strings.IndexByte("+-=.,_:@", c) >= 0:
			default:
				return Route{Class: ClassDenied}
			}
		}
	}
	return Route{Class: ClassProxy}
}
