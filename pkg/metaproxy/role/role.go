// Package role decides which IAM role a pod may assume through metaproxy:
// the pod annotation (a name relative to the base role ARN, or a full ARN),
// else the default role, checked against the namespace's allowed-roles
// annotation when namespace restrictions are on. It also derives the STS
// session name and external ID that, with the role, key the credential cache.
//
// Policy is safe for concurrent use; it reads namespaces through a small
// interface so the informer (or a map in tests) supplies them.
package role

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/nodekit/nodekit/pkg/kube"
)

// AllowedRolesAnnotation is the namespace annotation listing the roles its pods may use.
const AllowedRolesAnnotation = "iam.amazonaws.com/allowed-roles"

// Match formats for the allowed-roles patterns.
const (
	MatchGlob   = "glob"
	MatchRegexp = "regexp"
)

// Config is the role policy's part of metaproxy's command line.
type Config struct {
	// BaseRoleARN is prefixed to role names that are not full ARNs, e.g.
	// "arn:aws:iam::123456789012:role/".
	BaseRoleARN string
	// DefaultRole is used for pods without a role annotation; empty means none.
	DefaultRole string
	// RoleKey is the pod annotation naming the role.
	RoleKey string
	// ExternalIDKey is the pod annotation holding the STS external ID.
	ExternalIDKey string
	// NamespaceRestrictions requires the namespace's allowed-roles annotation
	// to allow the role.
	NamespaceRestrictions bool
	// RestrictionFormat is MatchGlob or MatchRegexp.
	RestrictionFormat string
}

// RegisterFlags binds the policy's flags to fs (kube2iam's names where they overlap).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.BaseRoleARN, "base-role-arn", "", "ARN prefix for role names that are not full ARNs, e.g. arn:aws:iam::123456789012:role/")
	fs.StringVar(&c.DefaultRole, "default-role", "", "role (name or ARN) for pods without a role annotation; empty: such pods get 404")
	fs.StringVar(&c.RoleKey, "iam-role-key", "iam.amazonaws.com/role", "pod annotation naming the pod's role (a name relative to --base-role-arn, or a full ARN)")
	fs.StringVar(&c.ExternalIDKey, "iam-external-id-key", "iam.amazonaws.com/external-id", "pod annotation holding the STS external ID to pass when assuming the role")
	fs.BoolVar(&c.NamespaceRestrictions, "namespace-restrictions", false, "allow only roles matched by the namespace annotation "+AllowedRolesAnnotation+" (a JSON list); a namespace without it allows only the default role")
	fs.StringVar(&c.RestrictionFormat, "namespace-restriction-format", MatchGlob, "how "+AllowedRolesAnnotation+" entries match the whole role ARN: glob or regexp")
}

// Namespaces looks namespaces up; *kube.Namespaces satisfies it.
type Namespaces interface {
	Get(name string) (*kube.Namespace, bool)
}

// Assignment is the role a pod gets and the STS parameters that go with it.
type Assignment struct {
	// ARN is the full role ARN.
	ARN string
	// Name is what security-credentials/ lists: the last segment of the ARN.
	Name string
	// ExternalID is passed to AssumeRole when not empty.
	ExternalID string
	// SessionName identifies the pod in CloudTrail.
	SessionName string
	// Default reports whether the role came from --default-role.
	Default bool
}

// Sentinel errors, matched with errors.Is; the HTTP layer maps them to codes.
var (
	// ErrNoRole: the pod has no role annotation and there is no default role (404).
	ErrNoRole = errors.New("pod has no role and there is no default role")
	// ErrDenied: the role is not allowed for the pod (403).
	ErrDenied = errors.New("role not allowed")
)

// DeniedError says why a role was refused; it matches ErrDenied.
type DeniedError struct {
	Role   string
	Reason string
}

func (e *DeniedError) Error() string { return fmt.Sprintf("role %q not allowed: %s", e.Role, e.Reason) }

// Is makes errors.Is(err, ErrDenied) true.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// Policy resolves pods to roles.
type Policy struct {
	cfg        Config
	namespaces Namespaces
	defaultARN string

	mu       sync.Mutex
	patterns map[string]compiled // by annotation value; annotations change rarely
}

type compiled struct {
	res []*regexp.Regexp
	err error
}

// arnPattern is an IAM role ARN: partition, 12-digit account, role path and name.
var arnPattern = regexp.MustCompile(`^arn:aws[a-zA-Z-]*:iam::\d{12}:role/(?:[\x21-\x7e]+/)*[\w+=,.@-]{1,64}$`)

// New validates cfg. namespaces may be nil when restrictions are off.
func New(cfg Config, namespaces Namespaces) (*Policy, error) {
	p, err := newPolicy(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.NamespaceRestrictions && namespaces == nil {
		return nil, errors.New("namespace restrictions need a namespace lister")
	}
	p.namespaces = namespaces
	return p, nil
}

// Validate checks cfg as New does, for callers that report configuration
// errors before they have a namespace lister.
func (cfg Config) Validate() error {
	_, err := newPolicy(cfg)
	return err
}

func newPolicy(cfg Config) (*Policy, error) {
	if cfg.RoleKey == "" {
		return nil, errors.New("role annotation key must not be empty")
	}
	switch cfg.RestrictionFormat {
	case "", MatchGlob:
		cfg.RestrictionFormat = MatchGlob
	case MatchRegexp:
	default:
		return nil, fmt.Errorf("invalid namespace restriction format %q: want glob or regexp", cfg.RestrictionFormat)
	}
	if cfg.BaseRoleARN != "" && !strings.HasSuffix(cfg.BaseRoleARN, "/") {
		// "arn:aws:iam::123456789012:role" and ".../role/" both mean the same prefix.
		cfg.BaseRoleARN += "/"
	}
	p := &Policy{cfg: cfg, patterns: map[string]compiled{}}
	if cfg.DefaultRole != "" {
		arn, err := p.ARN(cfg.DefaultRole)
		if err != nil {
			return nil, fmt.Errorf("default role: %w", err)
		}
		p.defaultARN = arn
	}
	return p, nil
}

// ARN turns a role name or ARN into a full, validated role ARN.
func (p *Policy) ARN(role string) (string, error) {
	role = strings.TrimSpace(role)
	arn := role
	if !strings.HasPrefix(role, "arn:") {
		if p.cfg.BaseRoleARN == "" {
			return "", fmt.Errorf("role %q is not an ARN and --base-role-arn is not set", role)
		}
		arn = p.cfg.BaseRoleARN + strings.TrimPrefix(role, "/")
	}
	if !arnPattern.MatchString(arn) {
		return "", fmt.Errorf("role %q is not a valid IAM role ARN", arn)
	}
	return arn, nil
}

// Resolve returns the pod's role assignment, ErrNoRole, or a *DeniedError.
func (p *Policy) Resolve(pod *kube.Pod) (Assignment, error) {
	a := Assignment{SessionName: SessionName(pod.Namespace, pod.Name)}
	if v, ok := pod.Annotations[p.cfg.RoleKey]; ok && strings.TrimSpace(v) != "" {
		arn, err := p.ARN(v)
		if err != nil {
			return Assignment{}, &DeniedError{Role: v, Reason: err.Error()}
		}
		a.ARN = arn
	} else if p.defaultARN != "" {
		a.ARN, a.Default = p.defaultARN, true
	} else {
		return Assignment{}, ErrNoRole
	}
	a.Name = a.ARN[strings.LastIndexByte(a.ARN, '/')+1:]
	if p.cfg.ExternalIDKey != "" {
		if id, ok := pod.Annotations[p.cfg.ExternalIDKey]; ok {
			if !validExternalID(id) {
				return Assignment{}, &DeniedError{Role: a.ARN, Reason: "invalid external ID annotation"}
			}
			a.ExternalID = id
		}
	}
	if p.cfg.NamespaceRestrictions && a.ARN != p.defaultARN {
		if err := p.allowed(pod.Namespace, a.ARN); err != nil {
			return Assignment{}, err
		}
	}
	return a, nil
}

// allowed checks arn against the namespace's allowed-roles annotation. The
// default role is always allowed, so a namespace without the annotation
// allows only it.
func (p *Policy) allowed(namespace, arn string) error {
	ns, ok := p.namespaces.Get(namespace)
	if !ok {
		return &DeniedError{Role: arn, Reason: fmt.Sprintf("namespace %q not known", namespace)}
	}
	value, ok := ns.Annotations[AllowedRolesAnnotation]
	if !ok {
		return &DeniedError{Role: arn, Reason: fmt.Sprintf("namespace %q has no %s annotation", namespace, AllowedRolesAnnotation)}
	}
	c := p.compile(value)
	if c.err != nil {
		return &DeniedError{Role: arn, Reason: fmt.Sprintf("namespace %q: %v", namespace, c.err)}
	}
	for _, re := range c.res {
		if re.MatchString(arn) {
			return nil
		}
	}
	return &DeniedError{Role: arn, Reason: fmt.Sprintf("not in namespace %q's %s", namespace, AllowedRolesAnnotation)}
}

func (p *Policy) compile(value string) compiled {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.patterns[value]; ok {
		return c
	}
	c := compilePatterns(value, p.cfg.RestrictionFormat, p.cfg.BaseRoleARN)
	if len(p.patterns) > 1024 {
		// Bound the memo: annotation values are few, but they are user input.
		clear(p.patterns)
	}
	p.patterns[value] = c
	return c
}

// compilePatterns parses the JSON list and turns each entry into a regexp
// anchored at both ends, so a pattern can never match part of an ARN. Entries
// not starting with "arn:" are relative to base.
func compilePatterns(value, format, base string) compiled {
	var list []string
	if err := json.Unmarshal([]byte(value), &list); err != nil {
		return compiled{err: fmt.Errorf("invalid %s annotation (want a JSON list of strings): %w", AllowedRolesAnnotation, err)}
	}
	var c compiled
	for _, entry := range list {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		prefix := ""
		if !strings.HasPrefix(entry, "arn:") {
			prefix = regexp.QuoteMeta(base)
			entry = strings.TrimPrefix(entry, "/")
		}
		re, err := regexp.Compile(`^` + prefix + `(?:` + quoteFor(format, entry) + `)$`)
		if err != nil {
			return compiled{err: fmt.Errorf("invalid pattern %q in %s: %w", entry, AllowedRolesAnnotation, err)}
		}
		c.res = append(c.res, re)
	}
	return c
}

// quoteFor returns the regexp source for one entry: regexps as written, globs
// with * (any run of characters, "/" included) and ? (one character).
func quoteFor(format, entry string) string {
	if format == MatchRegexp {
		return entry
	}
	var b strings.Builder
	for _, r := range entry {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	return b.String()
}

// validExternalID follows STS's ExternalId constraints: 2–1224 characters of [\w+=,.@:/-].
func validExternalID(s string) bool {
	if len(s) < 2 || len(s) > 1224 {
		return false
	}
	for _, r := range s {
		if !sessionChar(r) && r != ':' && r != '/' {
			return false
		}
	}
	return true
}

func sessionChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_+=,.@-", r)
}

// maxSessionName is STS's RoleSessionName limit.
const maxSessionName = 64

// SessionName names the STS session after the pod, "namespace.name" (namespaces
// cannot contain dots, so the split stays unambiguous), within STS's alphabet
// [\w+=,.@-] and 64 characters. Longer names keep a prefix and a hash of the
// whole, so two long pod names do not share a session.
func SessionName(namespace, name string) string {
	full := namespace + "." + name
	var b strings.Builder
	for _, r := range full {
		if sessionChar(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	s := b.String()
	if len(s) < 2 {
		s = "pod" + s
	}
	if len(s) <= maxSessionName {
		return s
	}
	sum := sha256.Sum256([]byte(full))
	h := hex.EncodeToString(sum[:])[:12]
	return s[:maxSessionName-len(h)-1] + "-" + h
}
