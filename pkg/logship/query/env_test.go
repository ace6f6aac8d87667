package query

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/nodekit/nodekit/pkg/agent"
	"github.com/nodekit/nodekit/test/awsemu"
)

// isolateAWSEnv clears every source the SDK's default chain reads, so a
// developer's own AWS setup cannot leak in, and keeps the SDK away from
// the instance metadata address.
func isolateAWSEnv(t *testing.T) {
	t.Helper()
	none := filepath.Join(t.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "", "AWS_PROFILE": "", "AWS_DEFAULT_PROFILE": "",
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
		"AWS_CONFIG_FILE": none, "AWS_SHARED_CREDENTIALS_FILE": none,
		"AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": "",
	} {
		t.Setenv(k, v)
	}
}

// TestRunUsesTheDefaultChain runs the exported entry point the way an SRE
// does: region, keys and endpoint from the environment.
func TestRunUsesTheDefaultChain(t *testing.T) {
	isolateAWSEnv(t)
	emu, url := awsemu.StartServer(t, awsemu.Options{})
	t.Setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", url)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDQUERYENV")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")

	client := cloudwatchlogs.New(cloudwatchlogs.Options{Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDQUERYENV", "secret", "")})
	ctx := t.Context()
	if _, err := client.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(testGroup)}); err != nil {
		t.Fatal(err)
	}
	l := line{ns: "shop", pod: "web-0", container: "app", id: "c1", stream: "stdout", log: "hello from the env",
		ts: time.Now().Add(-5 * time.Minute).UTC().Truncate(time.Millisecond)}
	if _, err := client.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(testGroup), LogStreamName: aws.String(l.streamName())}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(testGroup), LogStreamName: aws.String(l.streamName()),
		LogEvents: []types.InputLogEvent{{Timestamp: aws.Int64(l.ts.UnixMilli()), Message: aws.String(l.record())}}}); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := Run(ctx, []string{"--cluster", "prod", "-n", "shop", "web-0"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if out.String() != l.plain()+"\n" {
		t.Fatalf("Run printed %q, want %q", out.String(), l.plain()+"\n")
	}
	if emu.Count("FilterLogEvents") != 1 {
		t.Fatalf("counts %v, want one FilterLogEvents", emu.Counts())
	}
}

func TestNoCredentials(t *testing.T) {
	isolateAWSEnv(t)
	emu, url := awsemu.StartServer(t, awsemu.Options{})
	t.Setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", url)
	var stderr bytes.Buffer
	runFn := func(ctx context.Context, args []string, stdout io.Writer) error {
		return Run(ctx, args, stdout, io.Discard)
	}
	code := agent.Exec("logship", runFn, []string{"--cluster", "prod"}, io.Discard, &stderr)
	checkOneLineError(t, code, stderr.String(), 1, "no AWS credentials")
	if n := emu.Count("FilterLogEvents"); n != 0 {
		t.Fatalf("%d FilterLogEvents calls without credentials, want none", n)
	}
}

func TestHelp(t *testing.T) {
	var stderr bytes.Buffer
	runFn := func(ctx context.Context, args []string, stdout io.Writer) error {
		return Run(ctx, args, stdout, &stderr)
	}
	if code := agent.Exec("logship", runFn, []string{"--help"}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("--help exit code %d, want 0", code)
	}
	if gaps := agent.HelpGaps(newFlagSet(&Config{}), stderr.String()); len(gaps) > 0 {
		t.Errorf("--help does not explain %v:\n%s", gaps, stderr.String())
	}
	for _, want := range []string{"Usage: logship query", "web-7f9c*"} {
		if !bytes.Contains(stderr.Bytes(), []byte(want)) {
			t.Fatalf("--help output lacks %q:\n%s", want, stderr.String())
		}
	}
}
