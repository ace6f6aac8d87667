package awsemu

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// IMDS header names as the real service spells them (net/http canonicalises
// on read, so case does not matter to clients).
const (
	imdsTokenHeader    = "X-Aws-Ec2-Metadata-Token"
	imdsTTLHeader      = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	imdsMaxTTLSeconds  = 21600
	nodeCredLifetime   = 6 * time.Hour
	nodeCredRefreshAge = time.Hour
)

// IMDSRequest is one request that reached the IMDS emulator.
type IMDSRequest struct {
	Time       time.Time
	Method     string
	Path       string
	RemoteAddr string
	// HadToken reports whether the request carried an IMDSv2 token header
	// (valid or not).
	HadToken      bool
	XForwardedFor string
	UserAgent     string
	// Status is the HTTP status answered (0 when the client went away
	// before an answer, e.g. under a blackhole fault).
	Status int
}

// IMDSRequests returns every request the IMDS emulator received.
func (e *Emulator) IMDSRequests() []IMDSRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]IMDSRequest(nil), e.imdsReqs...)
}

// SetIMDSRequireV2 switches IMDSv2-required mode (HttpTokens=required) on or
// off at runtime.
func (e *Emulator) SetIMDSRequireV2(required bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.imds.RequireV2 = required
}

// NodeRoleArn is the ARN of the instance profile role IMDS serves.
func (e *Emulator) NodeRoleArn() string {
	return fmt.Sprintf("arn:aws:iam::%s:role/%s", e.accountID, e.imds.NodeRole)
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (e *Emulator) serveIMDS(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w}
	defer func() {
		e.mu.Lock()
		e.imdsReqs = append(e.imdsReqs, IMDSRequest{
			Time:          e.now().UTC(),
			Method:        r.Method,
			Path:          r.URL.Path,
			RemoteAddr:    r.RemoteAddr,
			HadToken:      r.Header.Get(imdsTokenHeader) != "",
			XForwardedFor: r.Header.Get("X-Forwarded-For"),
			UserAgent:     r.UserAgent(),
			Status:        rec.status,
		})
		e.mu.Unlock()
	}()
	w = rec

	op := "IMDSMetadata"
	switch {
	case r.URL.Path == "/latest/api/token":
		op = "IMDSToken"
	case strings.HasPrefix(r.URL.Path, "/latest/meta-data/iam/security-credentials"):
		op = "IMDSCredentials"
	}
	switch e.admit(r, op) {
	case faultAbandon:
		return
	case faultThrottle:
		imdsError(w, http.StatusTooManyRequests)
		return
	case faultServerError:
		imdsError(w, http.StatusInternalServerError)
		return
	case faultDeny:
		imdsError(w, http.StatusForbidden)
		return
	}

	if op == "IMDSToken" {
		e.serveIMDSToken(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		imdsError(w, http.StatusMethodNotAllowed)
		return
	}
	if !e.imdsAuthorized(r) {
		imdsError(w, http.StatusUnauthorized)
		return
	}
	body, ok := e.imdsLookup(r.URL.Path)
	if !ok {
		imdsError(w, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write([]byte(body))
	}
}

// imdsError answers like IMDS does: a status and a tiny HTML page.
func imdsError(w http.ResponseWriter, status int) {
	text := fmt.Sprintf("%d - %s", status, http.StatusText(status))
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<html><head><title>%s</title></head><body><h1>%s</h1></body></html>\n", text, text)
}

func (e *Emulator) serveIMDSToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		w.Header().Set("Allow", "PUT")
		imdsError(w, http.StatusMethodNotAllowed)
		return
	}
	// The real service refuses token requests that went through a proxy
	// (they carry X-Forwarded-For), so a misconfigured proxy cannot hand a
	// session token to whoever sits behind it.
	if r.Header.Get("X-Forwarded-For") != "" {
		imdsError(w, http.StatusForbidden)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get(imdsTTLHeader))
	if err != nil || ttl < 1 || ttl > imdsMaxTTLSeconds {
		imdsError(w, http.StatusBadRequest)
		return
	}
	now := e.now()
	token := "AQAEA" + randomString(51, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
	e.mu.Lock()
	for t, exp := range e.imdsTokens {
		if !now.Before(exp) {
			delete(e.imdsTokens, t)
		}
	}
	e.imdsTokens[token] = now.Add(time.Duration(ttl) * time.Second)
	e.mu.Unlock()
	w.Header().Set(imdsTTLHeader, strconv.Itoa(ttl))
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(token))
}

// imdsAuthorized applies the IMDSv2 rules: a token, if sent, must be one we
// issued and unexpired; no token is fine unless v2 is required.
func (e *Emulator) imdsAuthorized(r *http.Request) bool {
	tok := r.Header.Get(imdsTokenHeader)
	e.mu.Lock()
	defer e.mu.Unlock()
	if tok == "" {
		return !e.imds.RequireV2
	}
	exp, ok := e.imdsTokens[tok]
	return ok && e.now().Before(exp)
}

// imdsLookup resolves a path to its body: a leaf's content or a directory
// listing (children separated by newlines, subdirectories with a trailing
// slash), as IMDS does.
func (e *Emulator) imdsLookup(path string) (string, bool) {
	leaves := e.imdsLeaves()
	p := strings.TrimPrefix(path, "/")
	if p == "" {
		return "latest", true
	}
	if v, ok := leaves[p]; ok {
		return v, true
	}
	dir := strings.TrimSuffix(p, "/") + "/"
	children := map[string]bool{}
	for k := range leaves {
		rest, ok := strings.CutPrefix(k, dir)
		if !ok {
			continue
		}
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			children[rest[:i+1]] = true
		} else {
			children[rest] = true
		}
	}
	if len(children) == 0 {
		return "", false
	}
	names := make([]string, 0, len(children))
	for c := range children {
		names = append(names, c)
	}
	sort.Strings(names)
	return strings.Join(names, "\n"), true
}

// imdsLeaves builds the metadata tree for this instance, refreshing the node
// role's credentials when they are an hour old, like EC2 does well before
// they expire.
func (e *Emulator) imdsLeaves() map[string]string {
	now := e.now().UTC()
	e.mu.Lock()
	cfg := e.imds
	cred := e.nodeCred
	e.mu.Unlock()
	if cred == nil || now.Sub(cred.Expiration.Add(-nodeCredLifetime)) >= nodeCredRefreshAge {
		c := e.issue(e.NodeRoleArn(), cfg.InstanceID, now.Add(nodeCredLifetime))
		cred = &c
		e.mu.Lock()
		e.nodeCred = cred
		e.mu.Unlock()
	}
	updated := cred.Expiration.Add(-nodeCredLifetime).Format(time.RFC3339)
	credJSON, _ := json.MarshalIndent(map[string]string{
		"Code":            "Success",
		"LastUpdated":     updated,
		"Type":            "AWS-HMAC",
		"AccessKeyId":     cred.AccessKeyID,
		"SecretAccessKey": cred.SecretAccessKey,
		"Token":           cred.SessionToken,
		"Expiration":      cred.Expiration.UTC().Format(time.RFC3339),
	}, "", "  ")
	infoJSON, _ := json.MarshalIndent(map[string]string{
		"Code":               "Success",
		"LastUpdated":        updated,
		"InstanceProfileArn": fmt.Sprintf("arn:aws:iam::%s:instance-profile/%s", e.accountID, cfg.NodeRole),
		"InstanceProfileId":  "AIPA" + roleID(cfg.NodeRole)[4:],
	}, "", "  ")
	docJSON, _ := json.MarshalIndent(map[string]any{
		"accountId":               e.accountID,
		"architecture":            "x86_64",
		"availabilityZone":        cfg.AvailabilityZone,
		"billingProducts":         nil,
		"devpayProductCodes":      nil,
		"marketplaceProductCodes": nil,
		"imageId":                 "ami-0123456789abcdef0",
		"instanceId":              cfg.InstanceID,
		"instanceType":            cfg.InstanceType,
		"kernelId":                nil,
		"pendingTime":             "2026-01-01T00:00:00Z",
		"privateIp":               cfg.LocalIPv4,
		"ramdiskId":               nil,
		"region":                  e.region,
		"version":                 "2017-09-30",
	}, "", "  ")
	hostname := "ip-" + strings.ReplaceAll(cfg.LocalIPv4, ".", "-") + ".ec2.internal"
	leaves := map[string]string{
		"latest/meta-data/ami-id":                                   "ami-0123456789abcdef0",
		"latest/meta-data/hostname":                                 hostname,
		"latest/meta-data/local-hostname":                           hostname,
		"latest/meta-data/instance-id":                              cfg.InstanceID,
		"latest/meta-data/instance-type":                            cfg.InstanceType,
		"latest/meta-data/local-ipv4":                               cfg.LocalIPv4,
		"latest/meta-data/mac":                                      "0e:00:00:00:00:01",
		"latest/meta-data/placement/availability-zone":              cfg.AvailabilityZone,
		"latest/meta-data/placement/region":                         e.region,
		"latest/meta-data/services/domain":                          "amazonaws.com",
		"latest/meta-data/services/partition":                       "aws",
		"latest/meta-data/iam/info":                                 string(infoJSON),
		"latest/meta-data/iam/security-credentials/" + cfg.NodeRole: string(credJSON),
		"latest/dynamic/instance-identity/document":                 string(docJSON),
	}
	if cfg.UserData != "" {
		leaves["latest/user-data"] = cfg.UserData
	}
	return leaves
}
