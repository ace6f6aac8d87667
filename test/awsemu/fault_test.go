package awsemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func TestThrottleEveryNIsRetriedBySDK(t *testing.T) {
	t.Parallel()
	e, url := startEmu(t, Options{})
	client := newLogsClient(url, 5)
	ctx := testContext(t)
	mustCreate(ctx, t, client, "g", "s")
	e.SetFault("PutLogEvents", Fault{ThrottleEvery: 3})
	for i := 0; i < 6; i++ {
		if _, err := client.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{
			LogGroupName: aws.String("g"), LogStreamName: aws.String("s"),
			LogEvents: []types.InputLogEvent{ev(testNow.UnixMilli(), fmt.Sprint(i))},
		}); err != nil {
			t.Fatalf("PutLogEvents %d: %v", i, err)
		}
	}
	// Attempts 3 and 6 were throttled and retried: 6 calls, 8 requests.
	if got := e.Count("PutLogEvents"); got != 8 {
		t.Errorf("PutLogEvents requests = %d, want 8", got)
	}
	if got := len(e.Events("g", "s")); got != 6 {
		t.Errorf("stored %d events, want 6 (a throttled request must store nothing)", got)
	}

	// Without retries the caller sees the throttling error itself.
	noRetry := newLogsClient(url, 1)
	e.SetFault("DescribeLogGroups", Fault{ThrottleEvery: 1})
	_, err := noRetry.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{})
	if code, msg, _ := apiError(err); code != "ThrottlingException" || msg != "Rate exceeded" {
		t.Errorf("throttled DescribeLogGroups = %v", err)
	}
}

// TestDenyAnswersAccessDenied: each service's own access-denied answer,
// which the SDK does not retry, and nothing done.
func TestDenyAnswersAccessDenied(t *testing.T) {
	t.Parallel()
	e, url := startEmu(t, Options{})
	ctx := testContext(t)
	logs := newLogsClient(url, 3)
	e.SetFault("CreateLogGroup", Fault{Deny: true})
	_, err := logs.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("g")})
	if code, _, _ := apiError(err); code != "AccessDeniedException" || e.Count("CreateLogGroup") != 1 {
		t.Errorf("denied CreateLogGroup = %v after %d requests, want AccessDeniedException after 1", err, e.Count("CreateLogGroup"))
	}
	if out, err := logs.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{}); err != nil || len(out.LogGroups) != 0 {
		t.Errorf("after a denied CreateLogGroup: %v, %v", out, err)
	}
	e.SetFault("AssumeRole", Fault{Deny: true})
	client := sts.New(sts.Options{Region: DefaultRegion, BaseEndpoint: aws.String(url), Credentials: staticCreds, Retryer: fastRetryer(3)})
	_, err = client.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String("s1")})
	if code, _, _ := apiError(err); code != "AccessDenied" {
		t.Errorf("denied AssumeRole = %v, want AccessDenied", err)
	}
}

func TestServerErrorEveryNIsRetriedBySDK(t *testing.T) {
	t.Parallel()
	e, url := startEmu(t, Options{})
	e.SetFault("AssumeRole", Fault{ServerErrorEvery: 2})
	client := sts.New(sts.Options{Region: DefaultRegion, BaseEndpoint: aws.String(url), Credentials: staticCreds, Retryer: fastRetryer(3)})
	ctx := testContext(t)
	for i := 0; i < 2; i++ {
		if _, err := client.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String("s1")}); err != nil {
			t.Fatalf("AssumeRole %d: %v", i, err)
		}
	}
	if got := e.Count("AssumeRole"); got != 3 {
		t.Errorf("AssumeRole requests = %d, want 3", got)
	}
	// Faulted requests are not recorded as calls: only the two answered.
	if got := len(e.STSCalls()); got != 2 {
		t.Errorf("%d STS calls recorded, want 2", got)
	}
	_, err := newSTSClient(url, staticCreds).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String("s1")})
	// The 4th request is even, so a client without retries sees the 5xx.
	if code, _, _ := apiError(err); code != "InternalFailure" {
		t.Errorf("4th AssumeRole without retries = %v, want InternalFailure", err)
	}
}

func TestBlackholeRespectsContext(t *testing.T) {
	t.Parallel()
	e, url := startEmu(t, Options{})
	client := newLogsClient(url, 1)
	e.SetFault("CreateLogGroup", Fault{Blackhole: true})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := client.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("g")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("blackholed call = %v, want the caller's deadline", err)
	}
	if len(e.LogGroups()) != 0 {
		t.Error("blackholed CreateLogGroup created the group")
	}
}

func TestLatencyRespectsContext(t *testing.T) {
	t.Parallel()
	e, url := startEmu(t, Options{})
	e.SetFault("*", Fault{Latency: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := newSTSClient(url, staticCreds).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("delayed call = %v, want the caller's deadline", err)
	}
}

func TestClearingBlackholeReleasesRequests(t *testing.T) {
	t.Parallel()
	e, url := startEmu(t, Options{})
	client := newLogsClient(url, 1)
	e.SetFault("CreateLogGroup", Fault{Blackhole: true})
	ctx := testContext(t)
	done := make(chan error, 1)
	go func() {
		_, err := client.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("g")})
		done <- err
	}()
	// Wait for the request to be held by the emulator.
	if err := e.WaitFor(ctx, func() bool { return e.Count("CreateLogGroup") == 1 }); err != nil {
		t.Fatal(err)
	}
	e.SetFault("CreateLogGroup", Fault{})
	if err := <-done; err != nil {
		t.Fatalf("released call: %v", err)
	}
	if fmt.Sprint(e.LogGroups()) != "[g]" {
		t.Errorf("groups %v after release", e.LogGroups())
	}
}

func TestIMDSFaults(t *testing.T) {
	t.Parallel()
	e, url := startEmu(t, Options{})
	e.SetFault("IMDSCredentials", Fault{ThrottleEvery: 1})
	e.SetFault("IMDSToken", Fault{ServerErrorEvery: 1})
	for path, want := range map[string]int{
		"/latest/meta-data/iam/security-credentials/": http.StatusTooManyRequests,
		"/latest/meta-data/instance-id":               http.StatusOK,
	} {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s = %d, want %d", path, resp.StatusCode, want)
		}
	}
	req, _ := http.NewRequest(http.MethodPut, url+"/latest/api/token", nil)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("token PUT = %d, want 500", resp.StatusCode)
	}
}

func TestAdminAPI(t *testing.T) {
	t.Parallel()
	e, url := startEmu(t, Options{})
	do := func(method, path, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, url+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if resp := do(http.MethodPut, "/_awsemu/faults/PutLogEvents", `{"throttleEvery":7,"serverErrorEvery":11,"latency":"250ms"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT fault: %d", resp.StatusCode)
	}
	if got := e.Faults()["PutLogEvents"]; got != (Fault{ThrottleEvery: 7, ServerErrorEvery: 11, Latency: 250 * time.Millisecond}) {
		t.Errorf("installed fault %+v", got)
	}
	var faults map[string]Fault
	if err := json.NewDecoder(do(http.MethodGet, "/_awsemu/faults", "").Body).Decode(&faults); err != nil || faults["PutLogEvents"].ThrottleEvery != 7 {
		t.Errorf("GET faults = %v, %v", faults, err)
	}
	for _, bad := range []string{`{"latency":"soon"}`, `{"throttleEvery":-1}`, `not json`} {
		if resp := do(http.MethodPut, "/_awsemu/faults/X", bad); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("PUT %s: %d, want 400", bad, resp.StatusCode)
		}
	}
	do(http.MethodDelete, "/_awsemu/faults/PutLogEvents", "")
	if len(e.Faults()) != 0 {
		t.Errorf("faults after DELETE: %v", e.Faults())
	}
	_, _ = newSTSClient(url, staticCreds).GetCallerIdentity(testContext(t), &sts.GetCallerIdentityInput{})
	var counts map[string]int
	if err := json.NewDecoder(do(http.MethodGet, "/_awsemu/counts", "").Body).Decode(&counts); err != nil || counts["GetCallerIdentity"] != 1 {
		t.Errorf("counts = %v, %v", counts, err)
	}
}

func TestParseFault(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		wantOp  string
		want    Fault
		wantErr bool
	}{
		{"PutLogEvents:throttle=7,5xx=11", "PutLogEvents", Fault{ThrottleEvery: 7, ServerErrorEvery: 11}, false},
		{"AssumeRole:latency=200ms,blackhole", "AssumeRole", Fault{Latency: 200 * time.Millisecond, Blackhole: true}, false},
		{"*:blackhole=false,throttle=2", "*", Fault{ThrottleEvery: 2}, false},
		{"IMDSCredentials:", "IMDSCredentials", Fault{}, false},
		{"NoColon", "", Fault{}, true},
		{":throttle=1", "", Fault{}, true},
		{"X:throttle=abc", "", Fault{}, true},
		{"X:throttle=-1", "", Fault{}, true},
		{"X:latency=fast", "", Fault{}, true},
		{"X:blackhole=maybe", "", Fault{}, true},
		{"CreateLogGroup:deny", "CreateLogGroup", Fault{Deny: true}, false},
		{"X:deny=sometimes", "", Fault{}, true},
		{"X:unknown=1", "", Fault{}, true},
	}
	for _, tc := range tests {
		op, f, err := ParseFault(tc.in)
		if (err != nil) != tc.wantErr || op != tc.wantOp || f != tc.want {
			t.Errorf("ParseFault(%q) = %q, %+v, %v", tc.in, op, f, err)
		}
	}
}
