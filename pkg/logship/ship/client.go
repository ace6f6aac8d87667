package ship

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
)

// Client is CloudWatch Logs as a Sender calls it. The Sender writes each
// PutLogEvents request body itself (see putBody), so a client must send
// that body rather than serialize its (event-less) input: only this
// package can build one, with NewClient (the SDK's client) or FakeClient
// (a test double), so no client that would drop the events can be passed.
type Client interface {
	// put sends body, a batch's request for group/stream.
	put(ctx context.Context, group, stream string, body *putBody) (*cloudwatchlogs.PutLogEventsOutput, error)
	CreateLogGroup(ctx context.Context, in *cloudwatchlogs.CreateLogGroupInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogGroupOutput, error)
	CreateLogStream(ctx context.Context, in *cloudwatchlogs.CreateLogStreamInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogStreamOutput, error)
	PutRetentionPolicy(ctx context.Context, in *cloudwatchlogs.PutRetentionPolicyInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.PutRetentionPolicyOutput, error)
}

// CloudWatchClient is the SDK's CloudWatch Logs client with the Sender's
// request bodies wired in.
type CloudWatchClient struct {
	sdk *cloudwatchlogs.Client
}

var _ Client = (*CloudWatchClient)(nil)

// NewClient returns the SDK client for cfg. optFns apply to it as to
// cloudwatchlogs.NewFromConfig's; SDK-level retries are off unless an
// optFn turns them on: the Sender retries every failed put itself, forever,
// with backoff and counted by error class, and SDK retries would hide
// throttling from those counts and stack a second backoff on top.
func NewClient(cfg aws.Config, optFns ...func(*cloudwatchlogs.Options)) *CloudWatchClient {
	opts := append([]func(*cloudwatchlogs.Options){func(o *cloudwatchlogs.Options) { o.Retryer = aws.NopRetryer{} }}, optFns...)
	// Last, so that no caller's option replaces it.
	opts = append(opts, withFastPut)
	return &CloudWatchClient{sdk: cloudwatchlogs.NewFromConfig(cfg, opts...)}
}

func (c *CloudWatchClient) put(ctx context.Context, group, stream string, body *putBody) (*cloudwatchlogs.PutLogEventsOutput, error) {
	// The events travel in body; the input only names the stream, and
	// its empty (not nil) event list passes the SDK's validation.
	in := &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream), LogEvents: []types.InputLogEvent{}}
	return c.sdk.PutLogEvents(withBody(ctx, body), in)
}

// CreateLogGroup implements Client.
func (c *CloudWatchClient) CreateLogGroup(ctx context.Context, in *cloudwatchlogs.CreateLogGroupInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogGroupOutput, error) {
	return c.sdk.CreateLogGroup(ctx, in, optFns...)
}

// CreateLogStream implements Client.
func (c *CloudWatchClient) CreateLogStream(ctx context.Context, in *cloudwatchlogs.CreateLogStreamInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogStreamOutput, error) {
	return c.sdk.CreateLogStream(ctx, in, optFns...)
}

// PutRetentionPolicy implements Client.
func (c *CloudWatchClient) PutRetentionPolicy(ctx context.Context, in *cloudwatchlogs.PutRetentionPolicyInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.PutRetentionPolicyOutput, error) {
	return c.sdk.PutRetentionPolicy(ctx, in, optFns...)
}
