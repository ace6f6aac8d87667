package ship

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
)

// FakeClient is a func-field Client for tests; nil funcs succeed. Like the
// service, it reads the events from the request body a Sender wrote:
// PutLogEventsFunc sees them in the input, decoded.
type FakeClient struct {
	PutLogEventsFunc       func(ctx context.Context, in *cloudwatchlogs.PutLogEventsInput) (*cloudwatchlogs.PutLogEventsOutput, error)
	CreateLogGroupFunc     func(ctx context.Context, in *cloudwatchlogs.CreateLogGroupInput) (*cloudwatchlogs.CreateLogGroupOutput, error)
	CreateLogStreamFunc    func(ctx context.Context, in *cloudwatchlogs.CreateLogStreamInput) (*cloudwatchlogs.CreateLogStreamOutput, error)
	PutRetentionPolicyFunc func(ctx context.Context, in *cloudwatchlogs.PutRetentionPolicyInput) (*cloudwatchlogs.PutRetentionPolicyOutput, error)
}

var _ Client = (*FakeClient)(nil)

func (f *FakeClient) put(ctx context.Context, group, stream string, body *putBody) (*cloudwatchlogs.PutLogEventsOutput, error) {
	data, err := io.ReadAll(body.reader())
	if err != nil {
		return nil, fmt.Errorf("reading the request body: %w", err)
	}
	var req struct {
		LogGroupName, LogStreamName string
		LogEvents                   []types.InputLogEvent
	}
	if err := json.Unmarshal(data, &req); err != nil {
		return nil, &types.InvalidParameterException{Message: ptr(fmt.Sprintf("request body is not JSON: %v", err))}
	}
	if req.LogGroupName != group || req.LogStreamName != stream {
		return nil, &types.InvalidParameterException{Message: ptr("request body names another stream than the call")}
	}
	if f.PutLogEventsFunc == nil {
		return &cloudwatchlogs.PutLogEventsOutput{}, nil
	}
	return f.PutLogEventsFunc(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: &group, LogStreamName: &stream, LogEvents: req.LogEvents})
}

// CreateLogGroup implements Client.
func (f *FakeClient) CreateLogGroup(ctx context.Context, in *cloudwatchlogs.CreateLogGroupInput, _ ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogGroupOutput, error) {
	if f.CreateLogGroupFunc == nil {
		return &cloudwatchlogs.CreateLogGroupOutput{}, nil
	}
	return f.CreateLogGroupFunc(ctx, in)
}

// CreateLogStream implements Client.
func (f *FakeClient) CreateLogStream(ctx context.Context, in *cloudwatchlogs.CreateLogStreamInput, _ ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogStreamOutput, error) {
	if f.CreateLogStreamFunc == nil {
		return &cloudwatchlogs.CreateLogStreamOutput{}, nil
	}
	return f.CreateLogStreamFunc(ctx, in)
}

// PutRetentionPolicy implements Client.
func (f *FakeClient) PutRetentionPolicy(ctx context.Context, in *cloudwatchlogs.PutRetentionPolicyInput, _ ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.PutRetentionPolicyOutput, error) {
	if f.PutRetentionPolicyFunc == nil {
		return &cloudwatchlogs.PutRetentionPolicyOutput{}, nil
	}
	return f.PutRetentionPolicyFunc(ctx, in)
}

func ptr[T any](v T) *T { return &v }
