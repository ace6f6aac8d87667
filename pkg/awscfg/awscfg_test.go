package awscfg

import (
	"context"
	"strings"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/nodekit/nodekit/test/awsemu"
)

// TestLoadHonoursEndpointEnv checks the agents reach whatever
// AWS_ENDPOINT_URL_<SERVICE> names, which is how the demo, the tests and
// users with VPC endpoints point them somewhere else.
func TestLoadHonoursEndpointEnv(t *testing.T) {
	emu, url := awsemu.StartServer(t, awsemu.Options{})
	t.Setenv("AWS_ENDPOINT_URL_STS", url)
	t.Setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", url)
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE01")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")

	cfg, err := Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "eu-west-1" {
		t.Fatalf("region %q, want eu-west-1 from AWS_REGION", cfg.Region)
	}
	if _, err := sts.NewFromConfig(cfg).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{}); err != nil {
		t.Fatalf("GetCallerIdentity through AWS_ENDPOINT_URL_STS: %v", err)
	}
	if _, err := cloudwatchlogs.NewFromConfig(cfg).DescribeLogGroups(t.Context(), &cloudwatchlogs.DescribeLogGroupsInput{}); err != nil {
		t.Fatalf("DescribeLogGroups through AWS_ENDPOINT_URL_CLOUDWATCH_LOGS: %v", err)
	}
	if emu.Count("GetCallerIdentity") != 1 || emu.Count("DescribeLogGroups") != 1 {
		t.Fatalf("emulator counts %v, want one call of each", emu.Counts())
	}
}

func TestLoadRetriesAtMostMaxAttempts(t *testing.T) {
	emu, url := awsemu.StartServer(t, awsemu.Options{})
	emu.SetFault("GetCallerIdentity", awsemu.Fault{ServerErrorEvery: 1})
	cfg, err := Load(t.Context(),
		config.WithRegion("us-east-1"),
		config.WithBaseEndpoint(url),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIAEXAMPLEEXAMPLE01", "secret", "")),
	)
	if err != nil {
		t.Fatal(err)
	}
	_, err = sts.NewFromConfig(cfg).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("GetCallerIdentity with every call failing = %v, want a 500 error", err)
	}
	if got := emu.Count("GetCallerIdentity"); got != MaxAttempts {
		t.Fatalf("%d attempts reached the emulator, want %d", got, MaxAttempts)
	}
}

// After a burst of calls an agent keeps only a couple of idle connections
// per endpoint, not the SDK's ten.
func TestLoadBoundsIdleConnections(t *testing.T) {
	cfg, err := Load(t.Context(), config.WithRegion("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient)
	if !ok {
		t.Fatalf("HTTP client %T, want the SDK's buildable client", cfg.HTTPClient)
	}
	if got := bc.GetTransport().MaxIdleConnsPerHost; got != MaxIdleConnsPerHost {
		t.Fatalf("MaxIdleConnsPerHost %d, want %d", got, MaxIdleConnsPerHost)
	}
}
