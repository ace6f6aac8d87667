package awsemu

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

const stsXMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"

// STSCall is one STS request as the emulator saw it.
type STSCall struct {
	Time   time.Time
	Action string
	// CallerAccessKeyID is the access key from the request's SigV4
	// Authorization header (or presigned query), "" when unsigned.
	CallerAccessKeyID string
	RoleArn           string
	RoleSessionName   string
	ExternalID        string
	DurationSeconds   int // 0 when not sent
	// Params holds every form parameter (policies, tags...).
	Params url.Values
	// ErrorCode is the STS error code answered ("" on success; faults
	// answered before the operation are not recorded).
	ErrorCode string
	// AccessKeyID is the temporary key issued on success.
	AccessKeyID string
}

// issuedCred is a temporary credential the emulator handed out, so later
// calls signed with it can be attributed to a role.
type issuedCred struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	Expiration      time.Time
	RoleArn         string
	SessionName     string
}

// STSCalls returns every AssumeRole and GetCallerIdentity call so far.
func (e *Emulator) STSCalls() []STSCall {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]STSCall(nil), e.stsCalls...)
}

// SetAllowedRoles restricts AssumeRole to the given role ARNs; others get
// AccessDenied. Calling it with no ARNs (or nil) allows every role again.
func (e *Emulator) SetAllowedRoles(roleArns ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(roleArns) == 0 {
		e.allowedRoles = nil
		return
	}
	e.allowedRoles = map[string]bool{}
	for _, a := range roleArns {
		e.allowedRoles[a] = true
	}
}

// RequireExternalID makes AssumeRole of roleArn fail with AccessDenied
// unless ExternalId equals id, as a trust policy with sts:ExternalId does.
// An empty id removes the condition.
func (e *Emulator) RequireExternalID(roleArn, id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if id == "" {
		delete(e.externalIDs, roleArn)
		return
	}
	e.externalIDs[roleArn] = id
}

// RoleForAccessKey reports which role and session a temporary access key
// issued by this emulator (by AssumeRole or IMDS) belongs to.
func (e *Emulator) RoleForAccessKey(accessKeyID string) (roleArn, sessionName string, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.issued[accessKeyID]
	return c.RoleArn, c.SessionName, ok
}

// stsError is an STS error answer.
type stsError struct {
	status  int
	code    string
	message string
}

func (e stsError) Error() string { return e.code + ": " + e.message }

var (
	// arn:partition:iam::account:role/path/name. Role names are 1-64
	// characters of [\w+=,.@-]; paths are /seg/seg/.
	roleArnRE     = regexp.MustCompile(`^arn:(aws|aws-cn|aws-us-gov):iam::(\d{12}):role/((?:[\x21-\x7e]+/)*)([\w+=,.@-]{1,64})$`)
	sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]*$`)
	externalIDRE  = regexp.MustCompile(`^[\w+=,.@:/-]*$`)
	credentialRE  = regexp.MustCompile(`Credential=([^/,\s]+)/`)
)

// validationErrors collects constraint violations and renders them the way
// AWS's request validation does.
type validationErrors []string

func (v *validationErrors) add(value *string, member, constraint string) {
	if value == nil {
		*v = append(*v, fmt.Sprintf("Value null at '%s' failed to satisfy constraint: %s", member, constraint))
		return
	}
	*v = append(*v, fmt.Sprintf("Value '%s' at '%s' failed to satisfy constraint: %s", *value, member, constraint))
}

func (v validationErrors) message() string {
	if len(v) == 1 {
		return "1 validation error detected: " + v[0]
	}
	// Keep the message bounded when a batch has thousands of bad events.
	shown := v
	if len(shown) > 10 {
		shown = shown[:10]
	}
	return fmt.Sprintf("%d validation errors detected: %s", len(v), strings.Join(shown, "; "))
}

func callerAccessKey(r *http.Request) string {
	if m := credentialRE.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		return m[1]
	}
	if c := r.URL.Query().Get("X-Amz-Credential"); c != "" {
		k, _, _ := strings.Cut(c, "/")
		return k
	}
	return ""
}

func (e *Emulator) serveSTS(w http.ResponseWriter, r *http.Request) {
	reqID := newRequestID()
	w.Header().Set("x-amzn-RequestId", reqID)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		writeSTSError(w, reqID, stsError{http.StatusBadRequest, "MalformedInput", "Unable to read request body"})
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := r.ParseForm(); err != nil {
		writeSTSError(w, reqID, stsError{http.StatusBadRequest, "MalformedInput", "Unable to parse request body"})
		return
	}
	action := r.Form.Get("Action")
	op := action
	if op != "AssumeRole" && op != "GetCallerIdentity" {
		op = "STS"
	}
	switch e.admit(r, op) {
	case faultAbandon:
		return
	case faultThrottle:
		writeSTSError(w, reqID, stsError{http.StatusBadRequest, "Throttling", "Rate exceeded"})
		return
	case faultServerError:
		writeSTSError(w, reqID, stsError{http.StatusInternalServerError, "InternalFailure", "An internal error occurred."})
		return
	case faultDeny:
		writeSTSError(w, reqID, stsError{http.StatusForbidden, "AccessDenied", "User is not authorized to perform: sts:" + action})
		return
	}
	caller := callerAccessKey(r)
	if f := e.authenticate(r, body); f != authOK {
		se := stsAuthError(f)
		e.mu.Lock()
		e.stsCalls = append(e.stsCalls, STSCall{Time: e.now().UTC(), Action: action, CallerAccessKeyID: caller, Params: r.Form, ErrorCode: se.code})
		e.mu.Unlock()
		writeSTSError(w, reqID, se)
		return
	}
	var resp any
	switch action {
	case "AssumeRole":
		resp, err = e.assumeRole(r.Form, caller, reqID)
	case "GetCallerIdentity":
		resp = e.getCallerIdentity(r.Form, caller, reqID)
	default:
		err = stsError{http.StatusBadRequest, "InvalidAction", fmt.Sprintf("Could not find operation %s for version 2011-06-15", action)}
	}
	if err != nil {
		se, _ := err.(stsError)
		writeSTSError(w, reqID, se)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(resp)
}

type assumeRoleResponse struct {
	XMLName xml.Name `xml:"AssumeRoleResponse"`
	XMLNS   string   `xml:"xmlns,attr"`
	Result  struct {
		AssumedRoleUser struct {
			Arn           string
			AssumedRoleId string
		}
		Credentials struct {
			AccessKeyId     string
			SecretAccessKey string
			SessionToken    string
			Expiration      string
		}
		PackedPolicySize int `xml:",omitempty"`
	} `xml:"AssumeRoleResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

type getCallerIdentityResponse struct {
	XMLName xml.Name `xml:"GetCallerIdentityResponse"`
	XMLNS   string   `xml:"xmlns,attr"`
	Result  struct {
		Arn     string
		UserId  string
		Account string
	} `xml:"GetCallerIdentityResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

type stsErrorResponse struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	XMLNS   string   `xml:"xmlns,attr"`
	Error   struct {
		Type    string
		Code    string
		Message string
	}
	RequestID string `xml:"RequestId"`
}

func writeSTSError(w http.ResponseWriter, reqID string, se stsError) {
	if se.code == "" {
		se = stsError{http.StatusInternalServerError, "InternalFailure", "An internal error occurred."}
	}
	resp := stsErrorResponse{XMLNS: stsXMLNS, RequestID: reqID}
	resp.Error.Type = "Sender"
	if se.status >= 500 {
		resp.Error.Type = "Receiver"
	}
	resp.Error.Code = se.code
	resp.Error.Message = se.message
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(se.status)
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(resp)
}

// formValue returns a pointer to the parameter's value, nil when absent, so
// validation can tell "missing" from "empty" like the service does.
func formValue(f url.Values, key string) *string {
	if vs, ok := f[key]; ok && len(vs) > 0 {
		return &vs[0]
	}
	return nil
}

func (e *Emulator) assumeRole(f url.Values, caller, reqID string) (any, error) {
	now := e.now().UTC()
	call := STSCall{
		Time:              now,
		Action:            "AssumeRole",
		CallerAccessKeyID: caller,
		RoleArn:           f.Get("RoleArn"),
		RoleSessionName:   f.Get("RoleSessionName"),
		ExternalID:        f.Get("ExternalId"),
		Params:            f,
	}
	resp, err := e.assumeRoleChecked(f, &call, caller, now, reqID)
	if err != nil {
		se, _ := err.(stsError)
		call.ErrorCode = se.code
	}
	e.mu.Lock()
	e.stsCalls = append(e.stsCalls, call)
	e.mu.Unlock()
	return resp, err
}

func (e *Emulator) assumeRoleChecked(f url.Values, call *STSCall, caller string, now time.Time, reqID string) (any, error) {
	var verrs validationErrors
	roleArn := formValue(f, "RoleArn")
	switch {
	case roleArn == nil:
		verrs.add(nil, "roleArn", "Member must not be null")
	case len(*roleArn) < 20:
		verrs.add(roleArn, "roleArn", "Member must have length greater than or equal to 20")
	case len(*roleArn) > 2048:
		verrs.add(roleArn, "roleArn", "Member must have length less than or equal to 2048")
	}
	session := formValue(f, "RoleSessionName")
	switch {
	case session == nil:
		verrs.add(nil, "roleSessionName", "Member must not be null")
	case len(*session) < 2:
		verrs.add(session, "roleSessionName", "Member must have length greater than or equal to 2")
	case len(*session) > 64:
		verrs.add(session, "roleSessionName", "Member must have length less than or equal to 64")
	}
	if session != nil && !sessionNameRE.MatchString(*session) {
		verrs.add(session, "roleSessionName", `Member must satisfy regular expression pattern: [\w+=,.@-]*`)
	}
	duration := 3600
	if d := formValue(f, "DurationSeconds"); d != nil {
		n, err := strconv.Atoi(*d)
		switch {
		case err != nil:
			verrs.add(d, "durationSeconds", "Member must be an integer")
		case n < 900:
			verrs.add(d, "durationSeconds", "Member must have value greater than or equal to 900")
		case n > 43200:
			verrs.add(d, "durationSeconds", "Member must have value less than or equal to 43200")
		default:
			duration = n
			call.DurationSeconds = n
		}
	}
	if x := formValue(f, "ExternalId"); x != nil {
		switch {
		case len(*x) < 2:
			verrs.add(x, "externalId", "Member must have length greater than or equal to 2")
		case len(*x) > 1224:
			verrs.add(x, "externalId", "Member must have length less than or equal to 1224")
		}
		if !externalIDRE.MatchString(*x) {
			verrs.add(x, "externalId", `Member must satisfy regular expression pattern: [\w+=,.@:\/-]*`)
		}
	}
	if len(verrs) > 0 {
		return nil, stsError{http.StatusBadRequest, "ValidationError", verrs.message()}
	}
	m := roleArnRE.FindStringSubmatch(*roleArn)
	if m == nil {
		return nil, stsError{http.StatusBadRequest, "ValidationError", fmt.Sprintf("%s is not a valid role ARN", *roleArn)}
	}
	roleName := m[4]

	e.mu.Lock()
	denied := (e.allowedRoles != nil && !e.allowedRoles[*roleArn]) ||
		(e.externalIDs[*roleArn] != "" && e.externalIDs[*roleArn] != f.Get("ExternalId"))
	callerArn := e.callerArnLocked(caller)
	e.mu.Unlock()
	if denied {
		return nil, stsError{http.StatusForbidden, "AccessDenied",
			fmt.Sprintf("User: %s is not authorized to perform: sts:AssumeRole on resource: %s", callerArn, *roleArn)}
	}

	cred := e.issue(*roleArn, *session, now.Add(time.Duration(duration)*time.Second))
	call.AccessKeyID = cred.AccessKeyID
	resp := assumeRoleResponse{XMLNS: stsXMLNS, RequestID: reqID}
	resp.Result.AssumedRoleUser.Arn = fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", m[2], roleName, *session)
	resp.Result.AssumedRoleUser.AssumedRoleId = roleID(*roleArn) + ":" + *session
	resp.Result.Credentials.AccessKeyId = cred.AccessKeyID
	resp.Result.Credentials.SecretAccessKey = cred.SecretAccessKey
	resp.Result.Credentials.SessionToken = cred.SessionToken
	resp.Result.Credentials.Expiration = cred.Expiration.UTC().Format(time.RFC3339)
	return resp, nil
}

// issue mints a temporary credential for roleArn and remembers it.
func (e *Emulator) issue(roleArn, session string, exp time.Time) issuedCred {
	cred := issuedCred{
		AccessKeyID:     "ASIA" + randomString(16, upperAlnum),
		SecretAccessKey: randomString(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"),
		SessionToken:    "FwoGZXIvYXdzE" + base64.StdEncoding.EncodeToString([]byte(randomString(120, upperAlnum))),
		Expiration:      exp.UTC().Truncate(time.Second),
		RoleArn:         roleArn,
		SessionName:     session,
	}
	e.mu.Lock()
	e.issued[cred.AccessKeyID] = cred
	e.mu.Unlock()
	return cred
}

// roleID derives a stable AROA... unique id for a role ARN.
func roleID(roleArn string) string {
	sum := sha256.Sum256([]byte(roleArn))
	var b strings.Builder
	b.WriteString("AROA")
	for i := 0; i < 17; i++ {
		b.WriteByte(upperAlnum[int(sum[i])%len(upperAlnum)])
	}
	return b.String()
}

// callerArnLocked names the principal behind an access key. e.mu held.
func (e *Emulator) callerArnLocked(accessKey string) string {
	if c, ok := e.issued[accessKey]; ok {
		if m := roleArnRE.FindStringSubmatch(c.RoleArn); m != nil {
			return fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", m[2], m[4], c.SessionName)
		}
	}
	return fmt.Sprintf("arn:aws:iam::%s:user/awsemu", e.accountID)
}

func (e *Emulator) getCallerIdentity(f url.Values, caller, reqID string) any {
	resp := getCallerIdentityResponse{XMLNS: stsXMLNS, RequestID: reqID}
	e.mu.Lock()
	resp.Result.Arn = e.callerArnLocked(caller)
	resp.Result.Account = e.accountID
	if c, ok := e.issued[caller]; ok {
		resp.Result.UserId = roleID(c.RoleArn) + ":" + c.SessionName
	} else {
		resp.Result.UserId = "AIDA" + roleID(caller)[4:]
	}
	e.stsCalls = append(e.stsCalls, STSCall{
		Time: e.now().UTC(), Action: "GetCallerIdentity", CallerAccessKeyID: caller, Params: f,
	})
	e.mu.Unlock()
	return resp
}
