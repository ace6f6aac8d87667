package ship

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
)

// FakeClient is a func-field Client for tests; nil funcs succeed. Like the
// service, PutLogEvents reads the events from the request body a Sender
// wrote (see PutBody): PutLogEventsFunc sees them in the input, decoded.
type FakeClient struct {
	PutLogEventsFunc       func(ctx context.Context, in *cloudwatchlogs.PutLogEventsInput) (*cloudwatchlogs.PutLogEventsOutput, error)
	CreateLogGroupFunc     func(ctx context.Context, in *cloudwatchlogs.CreateLogGroupInput) (*cloudwatchlogs.CreateLogGroupOutput, error)
	CreateLogStreamFunc    func(ctx context.Context, in *cloudwatchlogs.CreateLogStreamInput) (*cloudwatchlogs.CreateLogStreamOutput, error)
	PutRetentionPolicyFunc func(ctx context.Context, in *cloudwatchlogs.PutRetentionPolicyInput) (*cloudwatchlogs.PutRetentionPolicyOutput, error)
}

var _ Client = (*FakeClient)(nil)

// PutLogEvents implements Client.
func (f *FakeClient) PutLogEvents(ctx context.Context, in *cloudwatchlogs.PutLogEventsInput, _ ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.PutLogEventsOutput, error) {
	if body := PutBody(ctx); body != nil {
		var req struct {
			LogGroupName, LogStreamName string
			LogEvents                   []types.InputLogEvent
		}
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, &types.InvalidParameterException{Message: ptr(fmt.Sprintf("request body is not JSON: %v", err))}
		}
		if req.LogGroupName != deref(in.LogGroupName) || req.LogStreamName != deref(in.LogStreamName) {
			return nil, &types.InvalidParameterException{Message: ptr("request body names another stream than the input")}
		}
		dup := *in
		dup.LogEvents = req.LogEvents
		in = &dup
	}
	if f.PutLogEventsFunc == nil {
		return &cloudwatchlogs.PutLogEventsOutput{}, nil
	}
	return f.PutLogEventsFunc(ctx, in)
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

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
