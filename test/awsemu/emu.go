// Package awsemu is an in-process emulator of the parts of AWS that nodekit
// talks to: STS (query protocol), CloudWatch Logs (JSON 1.1) and the EC2
// instance metadata service (IMDS), with per-operation fault injection.
//
// An Emulator is an http.Handler. Serve it from httptest, from any
// net.Listener, or from a listener bound to 169.254.169.254:80 inside a test
// network namespace. Requests are routed by shape, the way the real endpoints
// tell them apart:
//
//   - CloudWatch Logs: requests with X-Amz-Target: Logs_20140328.<Op>
//   - IMDS: paths under /latest/ (and GET /)
//   - admin API (faults, counts): paths under /_awsemu/; see AdminHandler
//   - STS: everything else (form or query parameters with Action=...)
//
// All state lives in the Emulator, guarded by one mutex, so any number of
// emulators can run in one test binary and every method is safe for
// concurrent use. Time comes from Options.Now so tests can pin "now" for the
// PutLogEvents age rules and IMDS token expiry.
//
// # Services
//
//   - STS: AssumeRole (the service's validation and error shapes; allow-list
//     and ExternalId conditions via SetAllowedRoles and RequireExternalID),
//     GetCallerIdentity (knows the roles behind keys it issued).
//   - CloudWatch Logs: Create/Delete LogGroup and LogStream, Put/Delete
//     RetentionPolicy, DescribeLogGroups/Streams, PutLogEvents with every
//     documented limit, GetLogEvents, FilterLogEvents (see filter.go for the
//     pattern syntax supported), and a Logs Insights subset (insights.go).
//   - IMDS: tokens (IMDSv1 and v2, RequireV2 mode), the meta-data tree the
//     SDKs read, node-role credentials rotated hourly, identity document,
//     user-data.
//   - Optionally (Options.StrictCredentials) authentication like AWS's: only
//     keys it issued or was given (AddCredentials), session tokens and
//     expiry checked against its clock, SigV4 signatures verified.
//
// # Operations, for faults and counts
//
// STS and Logs operations use their API names ("AssumeRole",
// "PutLogEvents"...; unknown STS actions count as "STS"). IMDS requests are
// "IMDSToken" (PUT /latest/api/token), "IMDSCredentials" (anything under
// meta-data/iam/security-credentials) and "IMDSMetadata" (every other GET).
// A fault for "*" applies to operations without their own.
//
// # In tests
//
// StartServer serves an emulator on loopback for one test. STSCalls,
// IMDSRequests, Events, LogGroups, Count and RoleForAccessKey show what
// reached it; WaitFor and WaitEvents block until a condition holds, woken by
// each request, so tests never sleep.
package awsemu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Defaults used when Options leaves a field empty.
const (
	DefaultRegion    = "us-east-1"
	DefaultAccountID = "123456789012"
	DefaultNodeRole  = "nodekit-node"
)

// Options configures an Emulator. The zero value is usable.
type Options struct {
	Region    string
	AccountID string
	// Now is the emulator's clock; defaults to time.Now. It decides event
	// ages in PutLogEvents, credential expirations and IMDS token expiry.
	// Fault latency is real time regardless, because it delays real sockets.
	Now func() time.Time
	// StrictCredentials authenticates STS and Logs requests: known keys
	// only (issued by the emulator or added with AddCredentials), session
	// tokens and expirations checked, SigV4 signatures verified.
	StrictCredentials bool
	// Logger receives a debug line per request; nil discards.
	Logger *slog.Logger
	IMDS   IMDSConfig
}

// IMDSConfig describes the instance the IMDS emulator pretends to be.
type IMDSConfig struct {
	// RequireV2 makes tokenless GETs fail with 401, like an instance with
	// HttpTokens=required.
	RequireV2 bool
	// NodeRole is the instance profile role name served under
	// iam/security-credentials/. Empty means DefaultNodeRole.
	NodeRole         string
	InstanceID       string
	InstanceType     string
	LocalIPv4        string
	AvailabilityZone string
	UserData         string
}

// Emulator is the emulated AWS. Create it with New. All methods are safe for
// concurrent use.
type Emulator struct {
	region    string
	accountID string
	now       func() time.Time
	logger    *slog.Logger
	strict    bool

	mu sync.Mutex
	// changed is closed and replaced whenever state changes (a request
	// arrives or finishes), waking WaitFor callers.
	changed chan struct{}
	counts  map[string]int
	faults  map[string]*faultState

	// CloudWatch Logs.
	groups   map[string]*logGroup
	eventSeq uint64

	queries map[string]*queryState // Logs Insights, by query id

	// STS.
	stsCalls     []STSCall
	allowedRoles map[string]bool // nil: every well-formed role may be assumed
	externalIDs  map[string]string
	issued       map[string]issuedCred // by access key id

	// IMDS.
	imds       IMDSConfig
	imdsTokens map[string]time.Time // token -> expiry
	imdsReqs   []IMDSRequest
	nodeCred   *issuedCred
}

// New returns an Emulator with no log groups, no faults and no recorded calls.
func New(opts Options) *Emulator {
	e := &Emulator{
		region:      opts.Region,
		accountID:   opts.AccountID,
		now:         opts.Now,
		strict:      opts.StrictCredentials,
		logger:      opts.Logger,
		changed:     make(chan struct{}),
		counts:      map[string]int{},
		faults:      map[string]*faultState{},
		groups:      map[string]*logGroup{},
		externalIDs: map[string]string{},
		issued:      map[string]issuedCred{},
		imds:        opts.IMDS,
		imdsTokens:  map[string]time.Time{},
	}
	if e.region == "" {
		e.region = DefaultRegion
	}
	if e.accountID == "" {
		e.accountID = DefaultAccountID
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.logger == nil {
		e.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if e.imds.NodeRole == "" {
		e.imds.NodeRole = DefaultNodeRole
	}
	if e.imds.InstanceID == "" {
		e.imds.InstanceID = "i-0123456789abcdef0"
	}
	if e.imds.InstanceType == "" {
		e.imds.InstanceType = "m5.large"
	}
	if e.imds.LocalIPv4 == "" {
		e.imds.LocalIPv4 = "10.0.0.10"
	}
	if e.imds.AvailabilityZone == "" {
		e.imds.AvailabilityZone = e.region + "a"
	}
	return e
}

// Region is the region the emulator reports.
func (e *Emulator) Region() string { return e.region }

// AccountID is the account every ARN the emulator makes belongs to.
func (e *Emulator) AccountID() string { return e.accountID }

// ServeHTTP routes a request to STS, CloudWatch Logs, IMDS or the admin API.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.logger.Debug("request", "method", r.Method, "path", r.URL.Path,
		"target", r.Header.Get("X-Amz-Target"), "remote", r.RemoteAddr)
	defer e.notify()
	switch {
	case strings.HasPrefix(r.Header.Get("X-Amz-Target"), logsTargetPrefix):
		e.serveLogs(w, r)
	case r.URL.Path == "/" && r.Method == http.MethodGet && r.URL.RawQuery == "":
		// IMDS answers "/" with the list of API versions; STS never gets a
		// bare GET from an SDK.
		e.serveIMDS(w, r)
	case strings.HasPrefix(r.URL.Path, "/latest/") || r.URL.Path == "/latest":
		e.serveIMDS(w, r)
	case strings.HasPrefix(r.URL.Path, adminPrefix):
		e.serveAdmin(w, r)
	default:
		e.serveSTS(w, r)
	}
}

// IMDSHandler serves only the metadata service: what a listener bound to
// 169.254.169.254 should expose, so pods cannot reach the admin API or STS
// through the metadata address.
func (e *Emulator) IMDSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.logger.Debug("imds request", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
		defer e.notify()
		e.serveIMDS(w, r)
	})
}

// AdminHandler serves only the admin API, which the Emulator itself also
// serves under /_awsemu/:
//
//	GET    /_awsemu/counts          {"PutLogEvents": 12, ...}
//	GET    /_awsemu/faults          {"PutLogEvents": {"throttleEvery": 7}, ...}
//	PUT    /_awsemu/faults/<op>     body: {"throttleEvery":7,"serverErrorEvery":11,"latency":"200ms","blackhole":false,"deny":false}
//	DELETE /_awsemu/faults/<op>     clear one fault
//	DELETE /_awsemu/faults          clear every fault
func (e *Emulator) AdminHandler() http.Handler {
	return http.HandlerFunc(e.serveAdmin)
}

// Count returns how many requests for op (e.g. "PutLogEvents", "AssumeRole",
// "IMDSToken") reached the emulator, including ones a fault answered. For
// CloudWatch Logs, "<op>:<error code>" (e.g.
// "PutLogEvents:ResourceNotFoundException") counts the requests the service
// itself refused with that error.
func (e *Emulator) Count(op string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.counts[op]
}

// Counts returns a copy of every per-operation request count.
func (e *Emulator) Counts() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int, len(e.counts))
	for k, v := range e.counts {
		out[k] = v
	}
	return out
}

// notify wakes every WaitFor caller to re-check its condition.
func (e *Emulator) notify() {
	e.mu.Lock()
	defer e.mu.Unlock()
	close(e.changed)
	e.changed = make(chan struct{})
}

// WaitFor blocks until cond returns true or ctx ends. cond is evaluated now
// and again after every request the emulator receives or answers, so tests
// can wait for "the agent has shipped 10 events" without sleeping. cond may
// call the Emulator's accessors (Events, Count, STSCalls...).
func (e *Emulator) WaitFor(ctx context.Context, cond func() bool) error {
	for {
		e.mu.Lock()
		ch := e.changed
		e.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for emulator state: %w", context.Cause(ctx))
		}
	}
}

// WaitEvents waits until group/stream holds at least n events and returns
// them.
func (e *Emulator) WaitEvents(ctx context.Context, group, stream string, n int) ([]Event, error) {
	var evs []Event
	err := e.WaitFor(ctx, func() bool {
		evs = e.Events(group, stream)
		return len(evs) >= n
	})
	if err != nil {
		return evs, fmt.Errorf("waiting for %d events in %s/%s (have %d): %w", n, group, stream, len(evs), err)
	}
	return evs, nil
}

// newRequestID returns a random UUID-shaped id, like x-amzn-RequestId.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

const upperAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

// randomString returns n characters drawn from alphabet.
func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
