package awsemu

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// testNow is the pinned clock most tests use, so event-age rules are exact.
var testNow = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

const (
	testAccessKey = "AKIDAWSEMUTEST000001"
	testSecret    = "awsemu-test-secret"
)

// startEmu serves a fresh emulator on loopback and cleans both up.
func startEmu(t *testing.T, opts Options) (*Emulator, string) {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return testNow }
	}
	return StartServer(t, opts)
}

// fastRetryer retries like the SDK's standard retryer but without backoff
// delays or a retry quota, so fault tests are quick and deterministic.
func fastRetryer(attempts int) aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = attempts
		o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		o.RateLimiter = ratelimit.None
	})
}

var staticCreds = credentials.NewStaticCredentialsProvider(testAccessKey, testSecret, "")

func newLogsClient(url string, attempts int) *cloudwatchlogs.Client {
	return cloudwatchlogs.New(cloudwatchlogs.Options{
		Region:       DefaultRegion,
		BaseEndpoint: aws.String(url),
		Credentials:  staticCreds,
		Retryer:      fastRetryer(attempts),
	})
}

func newSTSClient(url string, creds aws.CredentialsProvider) *sts.Client {
	return sts.New(sts.Options{
		Region:       DefaultRegion,
		BaseEndpoint: aws.String(url),
		Credentials:  creds,
		Retryer:      fastRetryer(1),
	})
}

// apiError extracts code and message from an SDK error; ok is false when err
// is not an API error (nil, transport...).
func apiError(err error) (code, msg string, ok bool) {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return "", "", false
	}
	return ae.ErrorCode(), ae.ErrorMessage(), true
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func decodeJSON(resp *http.Response, v any) error {
	return json.NewDecoder(resp.Body).Decode(v)
}
