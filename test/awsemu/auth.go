package awsemu

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Strict credential checking (Options.StrictCredentials) makes the emulator
// authenticate STS and CloudWatch Logs requests like AWS does: the access key
// must be one it issued (AssumeRole, IMDS) or one registered with
// AddCredentials, a temporary key must come with its session token and be
// unexpired by the emulator's clock, and the SigV4 signature must verify.
// That lets tests prove an agent refreshes credentials before they expire
// and signs with the secret it was given. Off by default, so tests can use
// any static key.

// AddCredentials registers a long-term key pair accepted in strict mode.
func (e *Emulator) AddCredentials(accessKeyID, secretAccessKey string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.issued[accessKeyID] = issuedCred{AccessKeyID: accessKeyID, SecretAccessKey: secretAccessKey}
}

// authFailure is why a request was not authenticated, in service-neutral
// terms; each protocol maps it to its own code.
type authFailure int

const (
	authOK authFailure = iota
	authMissing
	authUnknownKey
	authBadSignature
	authExpired
)

var (
	authHeaderRE = regexp.MustCompile(`^AWS4-HMAC-SHA256\s+Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,\s*SignedHeaders=([a-z0-9;\-]+),\s*Signature=([0-9a-f]{64})$`)
)

// authenticate checks r (whose body has been read into body) when strict
// mode is on.
func (e *Emulator) authenticate(r *http.Request, body []byte) authFailure {
	if !e.strict {
		return authOK
	}
	m := authHeaderRE.FindStringSubmatch(strings.TrimSpace(r.Header.Get("Authorization")))
	if m == nil {
		return authMissing
	}
	akid, region, service, signedHeaders, signature := m[1], m[3], m[4], m[5], m[6]
	e.mu.Lock()
	cred, ok := e.issued[akid]
	e.mu.Unlock()
	if !ok {
		return authUnknownKey
	}
	if cred.SessionToken != "" && r.Header.Get("X-Amz-Security-Token") != cred.SessionToken {
		return authUnknownKey
	}
	if !cred.Expiration.IsZero() && !e.now().Before(cred.Expiration) {
		return authExpired
	}
	signingTime, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return authBadSignature
	}

	// Re-sign a copy holding exactly the headers the client signed and
	// compare signatures.
	req, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return authBadSignature
	}
	req.Host = r.Host
	req.ContentLength = 0
	for _, h := range strings.Split(signedHeaders, ";") {
		switch h {
		case "host":
		case "content-length":
			req.ContentLength = int64(len(body))
		default:
			if vs := r.Header.Values(h); len(vs) > 0 {
				req.Header[http.CanonicalHeaderKey(h)] = vs
			}
		}
	}
	payloadHash := r.Header.Get("X-Amz-Content-Sha256")
	if payloadHash == "" {
		sum := sha256.Sum256(body)
		payloadHash = hex.EncodeToString(sum[:])
	}
	creds := aws.Credentials{AccessKeyID: akid, SecretAccessKey: cred.SecretAccessKey, SessionToken: cred.SessionToken}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, payloadHash, service, region, signingTime); err != nil {
		return authBadSignature
	}
	got := authHeaderRE.FindStringSubmatch(req.Header.Get("Authorization"))
	if got == nil || got[5] != signedHeaders || got[6] != signature {
		return authBadSignature
	}
	return authOK
}

// logsAuthError maps a failure to CloudWatch Logs' JSON error.
func logsAuthError(f authFailure) *logsError {
	switch f {
	case authMissing:
		return &logsError{http.StatusBadRequest, "MissingAuthenticationTokenException", "Missing Authentication Token"}
	case authUnknownKey:
		return &logsError{http.StatusBadRequest, "UnrecognizedClientException", "The security token included in the request is invalid."}
	case authExpired:
		return &logsError{http.StatusBadRequest, "ExpiredTokenException", "The security token included in the request is expired"}
	}
	return &logsError{http.StatusBadRequest, "InvalidSignatureException", msgSignatureMismatch}
}

// stsAuthError maps a failure to STS's XML error.
func stsAuthError(f authFailure) stsError {
	switch f {
	case authMissing:
		return stsError{http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token"}
	case authUnknownKey:
		return stsError{http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid."}
	case authExpired:
		return stsError{http.StatusBadRequest, "ExpiredToken", "The security token included in the request is expired"}
	}
	return stsError{http.StatusForbidden, "SignatureDoesNotMatch", msgSignatureMismatch}
}

const msgSignatureMismatch = "The request signature we calculated does not match the signature you provided. " +
	"Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
