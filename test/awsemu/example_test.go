package awsemu_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/smithy-go"

	"github.com/nodekit/nodekit/test/awsemu"
)

// A CloudWatch Logs client pointed at the emulator; a test then waits for
// what it expects to arrive instead of sleeping. In a test, prefer
// awsemu.StartServer(t, opts), which also cleans up.
func Example() {
	emu := awsemu.New(awsemu.Options{})
	srv := httptest.NewServer(emu)
	defer srv.Close()

	client := cloudwatchlogs.New(cloudwatchlogs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL), // or AWS_ENDPOINT_URL_CLOUDWATCH_LOGS
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = client.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("/app")})
	_, _ = client.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String("/app"), LogStreamName: aws.String("pod")})
	go func() {
		_, _ = client.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{
			LogGroupName:  aws.String("/app"),
			LogStreamName: aws.String("pod"),
			LogEvents:     []types.InputLogEvent{{Timestamp: aws.Int64(time.Now().UnixMilli()), Message: aws.String("hello")}},
		})
	}()
	events, err := emu.WaitEvents(ctx, "/app", "pod", 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(events[0].Message)

	// Every limit of the real service applies.
	_, err = client.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{
		LogGroupName:  aws.String("/app"),
		LogStreamName: aws.String("pod"),
		LogEvents: []types.InputLogEvent{
			{Timestamp: aws.Int64(time.Now().UnixMilli()), Message: aws.String("b")},
			{Timestamp: aws.Int64(time.Now().UnixMilli() - 1000), Message: aws.String("a")},
		},
	})
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.ErrorCode()+":", apiErr.ErrorMessage())
	}
	// Output:
	// hello
	// InvalidParameterException: Log events in a single PutLogEvents request must be in chronological order.
}

// Faults are set per operation, here from Go; the runnable command takes the
// same as --fault PutLogEvents:throttle=3 or through its admin API.
func ExampleEmulator_SetFault() {
	emu := awsemu.New(awsemu.Options{})
	emu.SetFault("PutLogEvents", awsemu.Fault{ThrottleEvery: 3, Latency: 50 * time.Millisecond})
	op, f, _ := awsemu.ParseFault("AssumeRole:5xx=2,blackhole")
	emu.SetFault(op, f)
	fmt.Println(emu.Faults()["AssumeRole"].ServerErrorEvery, emu.Faults()["AssumeRole"].Blackhole)
	// Output: 2 true
}
