package creds

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestThrottleCodesAreTheSDKs: every code the SDK's retryer treats as
// throttling counts as throttled here too (the hand-kept list missed some).
func TestThrottleCodesAreTheSDKs(t *testing.T) {
	for code := range retry.DefaultThrottleErrorCodes {
		t.Run(code, func(t *testing.T) {
			clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			f := &fakeSTS{fn: func(context.Context, *sts.AssumeRoleInput) (*sts.AssumeRoleOutput, error) {
				return nil, &smithy.GenericAPIError{Code: code, Message: "slow down"}
			}}
			c, _ := newCache(t, f, clk)
			if _, err := c.Get(context.Background(), key); err == nil {
				t.Fatal("Get succeeded")
			}
			if v := testutil.ToFloat64(c.metrics.sts.WithLabelValues("throttled")); v != 1 {
				t.Errorf("%s: throttled STS calls = %v, want 1", code, v)
			}
		})
	}
}
