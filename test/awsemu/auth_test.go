package awsemu

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func logsClientWith(url string, creds aws.CredentialsProvider) *cloudwatchlogs.Client {
	return cloudwatchlogs.New(cloudwatchlogs.Options{
		Region: DefaultRegion, BaseEndpoint: aws.String(url), Credentials: creds, Retryer: fastRetryer(1),
	})
}

func TestStrictCredentials(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(testNow)
	e, url := startEmu(t, Options{Now: clock.Now, StrictCredentials: true})
	e.AddCredentials(testAccessKey, testSecret)
	ctx := testContext(t)

	assumed, err := newSTSClient(url, staticCreds).AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn: aws.String(testRole), RoleSessionName: aws.String("strict"), DurationSeconds: aws.Int32(900)})
	if err != nil {
		t.Fatalf("AssumeRole with registered keys: %v", err)
	}
	c := assumed.Credentials
	tempCreds := credentials.NewStaticCredentialsProvider(*c.AccessKeyId, *c.SecretAccessKey, *c.SessionToken)

	describe := func(creds aws.CredentialsProvider) (string, error) {
		_, err := logsClientWith(url, creds).DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{})
		code, _, _ := apiError(err)
		return code, err
	}
	tests := []struct {
		name     string
		creds    aws.CredentialsProvider
		wantCode string
	}{
		{"registered_long_term_key", staticCreds, ""},
		{"wrong_secret", credentials.NewStaticCredentialsProvider(testAccessKey, "not-the-secret", ""), "InvalidSignatureException"},
		{"unknown_key", credentials.NewStaticCredentialsProvider("AKIDUNKNOWN000000000", testSecret, ""), "UnrecognizedClientException"},
		{"assumed_role_key", tempCreds, ""},
		{"assumed_role_key_without_token", credentials.NewStaticCredentialsProvider(*c.AccessKeyId, *c.SecretAccessKey, ""), "UnrecognizedClientException"},
		{"assumed_role_key_wrong_secret", credentials.NewStaticCredentialsProvider(*c.AccessKeyId, "x"+*c.SecretAccessKey, *c.SessionToken), "InvalidSignatureException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if code, err := describe(tc.creds); code != tc.wantCode {
				t.Errorf("DescribeLogGroups: %v, want code %q", err, tc.wantCode)
			}
		})
	}

	// After the 900 s the role session was given, its key is expired.
	clock.Advance(900 * time.Second)
	if code, err := describe(tempCreds); code != "ExpiredTokenException" {
		t.Errorf("expired key on Logs: %v", err)
	}
	_, err = newSTSClient(url, tempCreds).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if code, _, _ := apiError(err); code != "ExpiredToken" {
		t.Errorf("expired key on STS: %v", err)
	}
	if code, err := describe(staticCreds); code != "" {
		t.Errorf("long-term key after the clock moved: %v", err)
	}

	// No signature at all.
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{}`))
	req.Header.Set("X-Amz-Target", "Logs_20140328.DescribeLogGroups")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unsigned request: %d", resp.StatusCode)
	}

	// Refused STS calls are recorded with their code.
	var refused []string
	for _, call := range e.STSCalls() {
		if call.ErrorCode != "" {
			refused = append(refused, call.ErrorCode)
		}
	}
	if strings.Join(refused, ",") != "ExpiredToken" {
		t.Errorf("refused STS calls %v", refused)
	}
}

func TestStrictCredentialsAcceptIMDSNodeCredentials(t *testing.T) {
	t.Parallel()
	_, url := startEmu(t, Options{StrictCredentials: true})
	ctx := testContext(t)
	resp, err := http.Get(url + "/latest/meta-data/iam/security-credentials/" + DefaultNodeRole)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct{ AccessKeyId, SecretAccessKey, Token string }
	if err := decodeJSON(resp, &doc); err != nil {
		t.Fatal(err)
	}
	out, err := newSTSClient(url, credentials.NewStaticCredentialsProvider(doc.AccessKeyId, doc.SecretAccessKey, doc.Token)).
		GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity with node credentials: %v", err)
	}
	if want := "arn:aws:sts::123456789012:assumed-role/" + DefaultNodeRole + "/i-0123456789abcdef0"; *out.Arn != want {
		t.Errorf("caller %s, want %s", *out.Arn, want)
	}
}
