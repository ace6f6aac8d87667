package query

import (
	"fmt"
	"regexp"
	"strings"
)

// selection is what the SRE asked for, before it becomes a CloudWatch
// request.
type selection struct {
	Namespace string
	// Pod is a pod name, or a glob with * (web-7f9c*).
	Pod       string
	Container string
	Stream    string // stdout, stderr or empty
	Grep      string // text the log message must contain
}

var (
	// Kubernetes names are DNS labels or subdomains, so these also keep
	// values from breaking out of the filter pattern's quoted strings.
	nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)
	podRE  = regexp.MustCompile(`^[a-z0-9.*-]*[a-z0-9.-][a-z0-9.*-]*$`)
)

func (s selection) validate() error {
	if s.Namespace != "" && !nameRE.MatchString(s.Namespace) {
		return fmt.Errorf("invalid --namespace %q: want a Kubernetes namespace name", s.Namespace)
	}
	if s.Container != "" && !nameRE.MatchString(s.Container) {
		return fmt.Errorf("invalid --container %q: want a Kubernetes container name", s.Container)
	}
	if s.Pod != "" && !podRE.MatchString(s.Pod) {
		return fmt.Errorf("invalid pod %q: want a pod name or a prefix such as web-7f9c*", s.Pod)
	}
	switch s.Stream {
	case "", "stdout", "stderr":
	default:
		return fmt.Errorf("invalid --stream %q: want stdout or stderr", s.Stream)
	}
	if strings.ContainsAny(s.Grep, "\"\\\n") {
		// CloudWatch filter patterns have no escapes inside quoted values.
		return fmt.Errorf("invalid --grep %q: CloudWatch filter patterns cannot hold double quotes, backslashes or newlines; use --regex", s.Grep)
	}
	return nil
}

// filterPattern is the CloudWatch JSON filter pattern selecting the records
// (fluent-bit's kubernetes shape) the selection wants; empty when it wants
// every event. --grep becomes a wildcard match on the log message rather
// than a term filter, because term and JSON patterns cannot be combined in
// one request and a match in the metadata (a label, the image) would be a
// false hit anyway.
func (s selection) filterPattern() string {
	var conds []string
	add := func(sel, v string) {
		if v != "" {
			conds = append(conds, sel+` = "`+v+`"`)
		}
	}
	add("$.kubernetes.namespace_name", s.Namespace)
	add("$.kubernetes.pod_name", s.Pod)
	add("$.kubernetes.container_name", s.Container)
	add("$.stream", s.Stream)
	if s.Grep != "" {
		add("$.log", "*"+s.Grep+"*")
	}
	if len(conds) == 0 {
		return ""
	}
	return "{ " + strings.Join(conds, " && ") + " }"
}

// matches reports whether e is one of the selection's records. The request
// already asks CloudWatch for exactly these (filterPattern, streamPrefix),
// but the answer is checked here too: not every store applies a JSON
// filter pattern the way CloudWatch does (moto returns every event), and
// the records are decoded anyway. An event that is not a shipper record
// matches only a selection of nothing but --grep.
func (s selection) matches(e event) bool {
	if s.Grep != "" && !globMatch("*"+s.Grep+"*", e.rec.Log) {
		return false
	}
	if s.Namespace == "" && s.Pod == "" && s.Container == "" && s.Stream == "" {
		return true
	}
	k := e.rec.Kubernetes
	return e.isRecord &&
		(s.Namespace == "" || k.NamespaceName == s.Namespace) &&
		(s.Pod == "" || globMatch(s.Pod, k.PodName)) &&
		(s.Container == "" || k.ContainerName == s.Container) &&
		(s.Stream == "" || e.rec.Stream == s.Stream)
}

// globMatch reports whether s matches pattern, where * stands for any run
// of characters (as in a CloudWatch filter pattern's quoted value) and
// everything else for itself.
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return s == pattern
	}
	first, last := parts[0], parts[len(parts)-1]
	if !strings.HasPrefix(s, first) {
		return false
	}
	s = s[len(first):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, last)
}

// placeholderRE finds the shipper's template placeholders.
var placeholderRE = regexp.MustCompile(`\{[a-z_]+\}`)

// expandGroup fills a log group template. Every placeholder must be known:
// a log group is one name, never a prefix.
func expandGroup(tmpl string, vals map[string]string) (string, error) {
	var missing []string
	out := placeholderRE.ReplaceAllStringFunc(tmpl, func(p string) string {
		v, ok := vals[p]
		if !ok || v == "" {
			missing = append(missing, p)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("log group template %q needs %s: give the flags for them or --log-group with a plain name", tmpl, strings.Join(missing, ", "))
	}
	return out, nil
}

// streamPrefix is the longest prefix every stream the selection can match
// shares, from the shipper's stream template: literal text and known
// placeholders are kept until the first unknown placeholder. A pod glob
// contributes its text up to the first *. Empty means no narrowing.
func streamPrefix(tmpl string, vals map[string]string) string {
	var b strings.Builder
	rest := tmpl
	for rest != "" {
		loc := placeholderRE.FindStringIndex(rest)
		if loc == nil {
			b.WriteString(rest)
			break
		}
		b.WriteString(rest[:loc[0]])
		v := vals[rest[loc[0]:loc[1]]]
		if v == "" {
			break
		}
		if i := strings.IndexByte(v, '*'); i >= 0 {
			b.WriteString(v[:i])
			break
		}
		b.WriteString(v)
		rest = rest[loc[1]:]
	}
	return b.String()
}
