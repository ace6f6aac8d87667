package awscfg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// apiErr is an error as the SDK returns it: the service's code inside the
// HTTP response error inside the operation error.
func apiErr(status int, code string) error {
	return &smithy.OperationError{ServiceID: "X", OperationName: "Op", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      &smithy.GenericAPIError{Code: code, Message: code},
		},
	}}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want ErrorClass
	}{
		{"throttling", apiErr(400, "ThrottlingException"), Throttled},
		{"sts_throttling", apiErr(400, "Throttling"), Throttled},
		{"limit_exceeded", apiErr(400, "LimitExceededException"), Throttled},
		{"slow_down_503", apiErr(503, "SlowDown"), Throttled},
		{"service_unavailable", apiErr(503, "ServiceUnavailableException"), ServerError},
		{"internal_failure", apiErr(500, "InternalFailure"), ServerError},
		{"request_timeout", apiErr(400, "RequestTimeout"), ServerError},
		{"access_denied", apiErr(400, "AccessDeniedException"), AccessDenied},
		{"sts_access_denied", apiErr(403, "AccessDenied"), AccessDenied},
		{"expired_token", apiErr(400, "ExpiredTokenException"), AccessDenied},
		{"bare_403", apiErr(403, ""), AccessDenied},
		{"validation", apiErr(400, "ValidationException"), Other},
		{"not_implemented", apiErr(501, "NotImplemented"), Other},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}, Network},
		{"reset", errors.New("read: connection reset by peer"), Network},
		{"canceled", fmt.Errorf("put: %w", context.Canceled), Other},
		{"no_credentials", errors.New("failed to refresh cached credentials, no EC2 IMDS role found"), Other},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.err); got != tc.want {
				t.Errorf("Classify(%v) = %s, want %s", tc.err, got, tc.want)
			}
		})
	}
	// Every code the SDK's retryer treats as throttling.
	for code := range retry.DefaultThrottleErrorCodes {
		if got := Classify(apiErr(400, code)); got != Throttled {
			t.Errorf("Classify(%s) = %s, want throttled", code, got)
		}
	}
}

func TestTransient(t *testing.T) {
	for c, want := range map[ErrorClass]bool{Throttled: true, ServerError: true, Network: true, AccessDenied: false, Other: false} {
		if c.Transient() != want {
			t.Errorf("%s.Transient() = %v, want %v", c, !want, want)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	b := NewBackoff(time.Minute)
	for _, tc := range []struct {
		n     int
		limit time.Duration
	}{{1, 2 * time.Second}, {3, 8 * time.Second}, {5, 32 * time.Second}, {6, time.Minute}, {40, time.Minute}} {
		for range 200 {
			if d := b.Delay(tc.n, errors.New("x")); d < 0 || d > tc.limit {
				t.Fatalf("Delay(%d) = %v, want within [0, %v]", tc.n, d, tc.limit)
			}
		}
	}
	if d := NewBackoff(20*time.Millisecond).Delay(1, nil); d > 20*time.Millisecond {
		t.Fatalf("Delay above a 20ms maximum: %v", d)
	}
}
