// Package awscfg loads the aws-sdk-go-v2 configuration every nodekit agent
// uses: the SDK's default credential chain and environment (AWS_REGION,
// AWS_ENDPOINT_URL_<SERVICE>, ...), the region discovered from the instance
// metadata service when nothing else names one, and a retryer tuned for
// agents that retry on their own schedule.
//
// No endpoint is ever hard-coded here: tests and the demo point the SDK at
// the emulator through AWS_ENDPOINT_URL_* like any user would.
package awscfg

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
)

// MaxAttempts is the SDK-level attempt count. Agents layer their own,
// longer-lived retries (logship retries forever with backoff; metaproxy
// serves from cache), so each SDK call gives up quickly and reports.
const MaxAttempts = 3

// MaxIdleConnsPerHost is how many idle connections to one AWS endpoint an
// agent keeps (the SDK's default is 10). Agents call AWS in bursts (a node's
// pods' roles at start, logship's first streams) and then a few calls at a
// time; each idle connection holds two goroutines and their buffers for
// the 90 s of its idle timeout.
const MaxIdleConnsPerHost = 2

// Load returns the SDK configuration. opts are applied after nodekit's
// defaults, so callers (and tests) can override any of them.
func Load(ctx context.Context, opts ...func(*config.LoadOptions) error) (aws.Config, error) {
	base := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = MaxAttempts
				o.MaxBackoff = 5 * time.Second
			})
		}),
		// Region from the instance metadata when AWS_REGION and the
		// shared config name none, as on a plain EC2 node.
		config.WithEC2IMDSRegion(),
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			tr.MaxIdleConnsPerHost = MaxIdleConnsPerHost
		})),
	}
	cfg, err := config.LoadDefaultConfig(ctx, append(base, opts...)...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, fmt.Errorf("no AWS region: set AWS_REGION or run where the instance metadata service answers")
	}
	return cfg, nil
}
