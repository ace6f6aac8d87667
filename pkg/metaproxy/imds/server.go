// Package imds is metaproxy's face towards pods: an HTTP server speaking the
// EC2 instance metadata protocol (IMDSv1 and v2). It normalises every path
// before deciding anything, finds the calling pod by source IP, issues and
// checks IMDSv2 tokens bound to that pod, answers the IAM paths itself with
// the pod's own role, hands harmless meta-data to the upstream proxy and
// refuses everything that could reveal the node's identity.
package imds

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodekit/nodekit/pkg/agent"
	"github.com/nodekit/nodekit/pkg/kube"
	"github.com/nodekit/nodekit/pkg/metaproxy/creds"
	"github.com/nodekit/nodekit/pkg/metaproxy/role"
)

// Config is the server's part of the command line.
type Config struct {
	// RequireToken refuses tokenless (IMDSv1) requests with 401.
	RequireToken bool
	// MaxConnsPerSource caps concurrent connections from one source IP
	// (default DefaultMaxConnsPerSource).
	MaxConnsPerSource int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// RegisterFlags binds the server's flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.RequireToken, "require-imdsv2", false, "refuse metadata requests without an IMDSv2 token (401), as an instance with HttpTokens=required does")
}

// Caller finds the pod behind a source IP; *caller.Resolver satisfies it.
type Caller interface {
	Resolve(ctx context.Context, ip string) (*kube.Pod, error)
}

// Roles decides a pod's role; *role.Policy satisfies it.
type Roles interface {
	Resolve(pod *kube.Pod) (role.Assignment, error)
}

// Credentials hands out role credentials; *creds.Cache satisfies it.
type Credentials interface {
	Get(ctx context.Context, key creds.Key) (creds.Credentials, error)
}

// Deps are the server's collaborators.
type Deps struct {
	Caller      Caller
	Roles       Roles
	Credentials Credentials
	// Upstream serves ClassProxy requests, whose URL.Path is the normalised path.
	Upstream http.Handler
}

// Server answers metadata requests. Safe for concurrent use.
type Server struct {
	cfg     Config
	deps    Deps
	tokens  *Tokens
	logger  *slog.Logger
	metrics *metrics

	// decisions remembers which (pod, decision) pairs were logged at Info,
	// so each grant or denial is logged once rather than on every SDK poll;
	// repeats go to Debug. It holds hashes, not the decisions: those include
	// paths pods choose, up to 1 KiB each.
	mu        sync.Mutex
	seed      maphash.Seed
	decisions map[uint64]struct{}
}

// maxDecisions bounds the memo; when full it starts over, which at worst
// logs a decision at Info again.
const maxDecisions = 16384

// New validates its input and builds the server; it starts nothing.
func New(cfg Config, deps Deps, reg prometheus.Registerer, logger *slog.Logger) (*Server, error) {
	if deps.Caller == nil || deps.Roles == nil || deps.Credentials == nil || deps.Upstream == nil {
		return nil, errors.New("metadata server needs a caller resolver, a role policy, a credential cache and an upstream")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxConnsPerSource <= 0 {
		cfg.MaxConnsPerSource = DefaultMaxConnsPerSource
	}
	tokens, err := NewTokens(cfg.Now)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, deps: deps, tokens: tokens, logger: logger, metrics: m, seed: maphash.MakeSeed(), decisions: map[uint64]struct{}{}}, nil
}

// Serve answers on ln until ctx ends, then shuts down within five seconds.
// Connections beyond MaxConnsPerSource from one source IP are closed.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ln = newCapListener(ln, s.cfg.MaxConnsPerSource, s.logger)
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		// A credential request may wait for the informer and for STS.
		WriteTimeout:   20 * time.Second,
		IdleTimeout:    90 * time.Second,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug),
		BaseContext:    func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if err := agent.Serve(ctx, ln, srv, 5*time.Second); err != nil {
		return fmt.Errorf("metadata server: %w", err)
	}
	return nil
}

// request is one metadata request as it moves through the checks.
type request struct {
	w     http.ResponseWriter
	r     *http.Request
	ip    netip.Addr
	path  string
	route Route
	pod   *kube.Pod
}

// ServeHTTP implements the metadata protocol.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w, code: http.StatusOK}
	class := "bad_request"
	defer func() {
		s.metrics.requests.WithLabelValues(class, strconv.Itoa(rec.code)).Inc()
		s.metrics.latency.WithLabelValues(class).Observe(time.Since(start).Seconds())
	}()
	rec.Header().Set("Server", "EC2ws")

	addrPort, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		plain(rec, http.StatusBadRequest, "")
		return
	}
	ip := addrPort.Addr().Unmap()
	p, err := Normalize(r.URL.EscapedPath())
	if err != nil {
		// Once per source at Info: a caller cannot flood the log.
		s.logger.Log(r.Context(), s.level("malformed", ip.String()), "refused malformed metadata path", "ip", ip.String(), "path", r.URL.EscapedPath())
		plain(rec, http.StatusBadRequest, "")
		return
	}
	route := Classify(p)
	class = route.Class.String()
	q := &request{w: rec, r: r, ip: ip, path: p, route: route}

	wantMethod := r.Method == http.MethodGet || r.Method == http.MethodHead
	if route.Class == ClassToken {
		wantMethod = r.Method == http.MethodPut
	}
	if !wantMethod {
		rec.Header().Set("Allow", map[bool]string{true: "PUT", false: "GET, HEAD"}[route.Class == ClassToken])
		plain(rec, http.StatusMethodNotAllowed, "")
		return
	}
	if route.Class == ClassNotFound {
		plain(rec, http.StatusNotFound, "")
		return
	}

	pod, err := s.deps.Caller.Resolve(answerAnyway(r), q.ip.String())
	if err != nil {
		s.logger.Log(r.Context(), s.level("unknown", q.ip.String()), "denied metadata request from unknown source", "ip", q.ip.String(), "path", p, "reason", err.Error())
		plain(rec, http.StatusNotFound, "")
		return
	}
	q.pod = pod

	if route.Class == ClassToken {
		s.serveToken(q)
		return
	}
	if !s.tokenOK(q) {
		return
	}
	switch route.Class {
	case ClassDenied:
		s.deny(q, http.StatusForbidden, "", "path reveals the node's identity")
	case ClassProxy:
		s.proxy(q)
	default:
		s.serveIAM(q)
	}
}

// tokenOK enforces IMDSv2 tokens: a presented token must be valid for this
// pod; a missing one is fine unless v2 is required.
func (s *Server) tokenOK(q *request) bool {
	values := q.r.Header.Values(TokenHeader)
	if len(values) == 0 {
		if s.cfg.RequireToken {
			s.deny(q, http.StatusUnauthorized, "", "IMDSv2 token required")
			return false
		}
		return true
	}
	if len(values) > 1 {
		s.deny(q, http.StatusUnauthorized, "", "several metadata tokens")
		return false
	}
	if err := s.tokens.Verify(values[0], q.ip, string(q.pod.UID)); err != nil {
		s.deny(q, http.StatusUnauthorized, "", err.Error())
		return false
	}
	return true
}

func (s *Server) serveToken(q *request) {
	if len(q.r.Header.Values("X-Forwarded-For")) > 0 {
		// As EC2 does: a token request that went through a proxy could hand
		// the token to whoever is behind it.
		s.deny(q, http.StatusForbidden, "", "token request with X-Forwarded-For")
		return
	}
	ttl, err := ParseTTL(q.r.Header.Get(TokenTTLHeader))
	if err != nil {
		s.deny(q, http.StatusBadRequest, "", err.Error())
		return
	}
	tok := s.tokens.Issue(q.ip, string(q.pod.UID), ttl)
	q.w.Header().Set(TokenTTLHeader, strconv.Itoa(int(ttl/time.Second)))
	plain(q.w, http.StatusOK, tok)
	s.logger.Debug("issued metadata token", podAttrs(q.pod, "ttl", ttl)...)
}

func (s *Server) proxy(q *request) {
	r := q.r.Clone(q.r.Context())
	r.URL.Path, r.URL.RawPath, r.URL.RawQuery = q.path, "", ""
	s.logger.Debug("proxied metadata request", podAttrs(q.pod, "path", q.path)...)
	s.deps.Upstream.ServeHTTP(q.w, r)
}

// answerAnyway is the context a request waits in for its pod or its
// credentials. It is not cancelled when the client closes its side of the
// connection: net/http cancels a request's context at the first EOF it
// reads, and a client that half-closes after sending its request (nc, or
// a shell's /dev/tcp) still reads the answer, which must then be its
// credentials, not a 503 "context canceled". Both waits are bounded on
// their own (--pod-wait, the STS fetch timeout).
func answerAnyway(r *http.Request) context.Context { return context.WithoutCancel(r.Context()) }

// serveIAM answers every path under meta-data/iam from the pod's own role.
func (s *Server) serveIAM(q *request) {
	a, err := s.deps.Roles.Resolve(q.pod)
	switch {
	case errors.Is(err, role.ErrNoRole):
		s.deny(q, http.StatusNotFound, "", "pod has no role annotation and there is no default role")
		return
	case err != nil:
		s.deny(q, http.StatusForbidden, "", err.Error())
		return
	}
	switch q.route.Class {
	case ClassIAM:
		plain(q.w, http.StatusOK, "info\nsecurity-credentials/")
	case ClassCredsList:
		plain(q.w, http.StatusOK, a.Name)
	case ClassIAMInfo:
		writeJSON(q.w, iamInfo(a, s.cfg.Now()))
		s.grant(q, a, "iam info")
	case ClassCreds:
		if q.route.Role != a.Name {
			s.deny(q, http.StatusForbidden, a.ARN, fmt.Sprintf("asked for role %q, which is not the pod's", q.route.Role))
			return
		}
		cr, err := s.deps.Credentials.Get(answerAnyway(q.r), creds.Key{RoleARN: a.ARN, ExternalID: a.ExternalID, SessionName: a.SessionName})
		if err != nil {
			s.deny(q, http.StatusServiceUnavailable, a.ARN, "credentials unavailable: "+err.Error())
			return
		}
		writeJSON(q.w, credentialDoc(cr, a, q.route.Extended))
		s.grant(q, a, "credentials")
	}
}

// The JSON shapes EC2 serves; SDKs parse these field names.
type credentialJSON struct {
	Code            string
	LastUpdated     string
	Type            string
	AccessKeyId     string //nolint:revive // the wire name
	SecretAccessKey string
	Token           string
	Expiration      string
	AccountId       string `json:",omitempty"` //nolint:revive // the wire name
}

type iamInfoJSON struct {
	Code               string
	LastUpdated        string
	InstanceProfileArn string
	InstanceProfileId  string //nolint:revive // the wire name
}

const timeFormat = "2006-01-02T15:04:05Z"

func credentialDoc(cr creds.Credentials, a role.Assignment, extended bool) credentialJSON {
	doc := credentialJSON{
		Code: "Success", LastUpdated: cr.LastUpdated.UTC().Format(timeFormat), Type: "AWS-HMAC",
		AccessKeyId: cr.AccessKeyID, SecretAccessKey: cr.SecretAccessKey, Token: cr.SessionToken,
		Expiration: cr.Expiration.UTC().Format(timeFormat),
	}
	if extended {
		doc.AccountId = accountID(a.ARN)
	}
	return doc
}

func iamInfo(a role.Assignment, now time.Time) iamInfoJSON {
	// The pod's role stands in for the instance profile, as kube2iam does, so
	// nothing about the node's real profile leaks.
	arn := strings.Replace(a.ARN, ":role/", ":instance-profile/", 1)
	return iamInfoJSON{Code: "Success", LastUpdated: now.UTC().Format(timeFormat), InstanceProfileArn: arn, InstanceProfileId: profileID(a.ARN)}
}

// accountID is the fifth field of an ARN.
func accountID(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 {
		return ""
	}
	return parts[4]
}

// profileID is a stable, made-up instance profile ID in AWS's shape.
func profileID(arn string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	h := uidHash(arn)
	var b strings.Builder
	b.WriteString("AIPA")
	for i := 0; i < 17; i++ {
		b.WriteByte(alphabet[h[i%16]&31])
	}
	return b.String()
}

func (s *Server) grant(q *request, a role.Assignment, what string) {
	level := s.level(string(q.pod.UID), "granted", a.ARN, what)
	s.logger.Log(q.r.Context(), level, "granted", podAttrs(q.pod, "role", a.ARN, "what", what, "path", q.path)...)
}

func (s *Server) deny(q *request, code int, roleARN, reason string) {
	level := s.level(string(q.pod.UID), "denied", roleARN, strconv.Itoa(code), reason, q.path)
	s.logger.Log(q.r.Context(), level, "denied", podAttrs(q.pod, "role", roleARN, "code", code, "reason", reason, "path", q.path)...)
	plain(q.w, code, "")
}

// level is Info the first time a decision (its parts) is seen, Debug after.
// A hash collision only demotes a first log line to Debug.
func (s *Server) level(parts ...string) slog.Level {
	var h maphash.Hash
	h.SetSeed(s.seed)
	for _, p := range parts {
		h.WriteString(p)
		h.WriteByte(0)
	}
	decision := h.Sum64()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, seen := s.decisions[decision]; seen {
		return slog.LevelDebug
	}
	if len(s.decisions) >= maxDecisions {
		clear(s.decisions)
	}
	s.decisions[decision] = struct{}{}
	return slog.LevelInfo
}

func podAttrs(p *kube.Pod, kv ...any) []any {
	return append([]any{"namespace", p.Namespace, "pod", p.Name, "uid", string(p.UID)}, kv...)
}

func plain(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

func writeJSON(w http.ResponseWriter, v any) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		plain(w, http.StatusInternalServerError, "")
		return
	}
	plain(w, http.StatusOK, string(body))
}

// recorder remembers the status code for metrics.
type recorder struct {
	http.ResponseWriter
	code    int
	written bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.written {
		r.code, r.written = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.written = true
	return r.ResponseWriter.Write(b)
}

// Flush keeps streaming working through the reverse proxy.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "metaproxy_requests_total",
			Help: "Metadata requests by path class (token, credentials, iam, proxy, denied, not_found, bad_request) and HTTP status code.",
		}, []string{"class", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "metaproxy_request_duration_seconds",
			Help:    "Time to answer metadata requests by path class.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"class"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering metadata server metrics: %w", err)
		}
	}
	return m, nil
}
