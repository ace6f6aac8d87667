package awscfg

import (
	"errors"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
)

// ErrorClass sorts a failed AWS call by what fixes it. The transient
// classes are the SDK's own (aws/retry's throttle codes, retryable codes,
// statuses and connection errors, as its retryer decides), so every agent
// agrees with the SDK and with each other on what passes by itself;
// anything else needs an operator.
type ErrorClass string

const (
	// Throttled: the account's request rate quota (retry.DefaultThrottleErrorCodes).
	Throttled ErrorClass = "throttled"
	// ServerError: the service failed (5xx, RequestTimeout).
	ServerError ErrorClass = "server_error"
	// Network: the request did not get an answer (refused, reset, timed out).
	Network ErrorClass = "network"
	// AccessDenied: the credentials are refused or lack a permission.
	AccessDenied ErrorClass = "access_denied"
	// Other: anything else the SDK would not retry.
	Other ErrorClass = "other"
)

// Transient reports whether the SDK's retryer would retry errors of c:
// they are expected to pass without anyone doing anything.
func (c ErrorClass) Transient() bool {
	return c == Throttled || c == ServerError || c == Network
}

// accessDeniedCodes are the error codes AWS services answer for refused
// credentials or a missing permission. The SDK keeps no such list: it
// simply does not retry them.
var accessDeniedCodes = map[string]bool{
	"AccessDenied": true, "AccessDeniedException": true, "UnauthorizedOperation": true,
	"UnrecognizedClientException": true, "InvalidClientTokenId": true, "AuthFailure": true,
	"InvalidSignatureException": true, "SignatureDoesNotMatch": true, "IncompleteSignature": true,
	"ExpiredToken": true, "ExpiredTokenException": true, "MissingAuthenticationToken": true,
}

var (
	throttles  = retry.IsErrorThrottles(retry.DefaultThrottles)
	connection = retry.RetryableConnectionError{}
	retryables = retry.IsErrorRetryables(retry.DefaultRetryables)
)

// Classify names the class of err, an error an AWS SDK call returned.
func Classify(err error) ErrorClass {
	if err == nil {
		return ""
	}
	var coded interface{ ErrorCode() string }
	var status interface{ HTTPStatusCode() int }
	switch {
	case throttles.IsErrorThrottle(err) == aws.TrueTernary:
		return Throttled
	case errors.As(err, &coded) && accessDeniedCodes[coded.ErrorCode()],
		errors.As(err, &status) && (status.HTTPStatusCode() == http.StatusForbidden || status.HTTPStatusCode() == http.StatusUnauthorized):
		return AccessDenied
	case connection.IsErrorRetryable(err) == aws.TrueTernary:
		return Network
	case retryables.IsErrorRetryable(err) == aws.TrueTernary:
		return ServerError
	}
	return Other
}

// Backoff is the SDK's exponential backoff with full jitter
// (retry.ExponentialJitterBackoff) capped at a maximum: retry n waits a
// random time below 2^n seconds, or the maximum.
type Backoff struct {
	max time.Duration
	b   *retry.ExponentialJitterBackoff
}

// NewBackoff returns a Backoff that never waits longer than max.
func NewBackoff(max time.Duration) *Backoff {
	return &Backoff{max: max, b: retry.NewExponentialJitterBackoff(max)}
}

// Delay is the wait before retry n (1 for the first) after err.
func (b *Backoff) Delay(n int, err error) time.Duration {
	d, rerr := b.b.BackoffDelay(n, err)
	if rerr != nil {
		// No randomness (crypto/rand failed): the longest wait is safe.
		return b.max
	}
	return min(d, b.max)
}
