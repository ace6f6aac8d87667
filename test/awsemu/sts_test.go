package awsemu

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

const testRole = "arn:aws:iam::123456789012:role/app/web-role"

// stsCase is one AssumeRole call; the same table runs against moto.
type stsCase struct {
	name     string
	in       sts.AssumeRoleInput
	wantCode string // "" for success
	wantIn   string // substring of the error message
}

var assumeRoleCases = []stsCase{
	{name: "ok", in: sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String("s1")}},
	{name: "ok_all_params", in: sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String("a+=,.@-_Z9"), DurationSeconds: aws.Int32(43200), ExternalId: aws.String("ext-id")}},
	{name: "duration_900", in: sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String("s1"), DurationSeconds: aws.Int32(900)}},
	{name: "duration_899", in: sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String("s1"), DurationSeconds: aws.Int32(899)},
		wantCode: "ValidationError", wantIn: "at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900"},
	{name: "duration_43201", in: sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String("s1"), DurationSeconds: aws.Int32(43201)},
		wantCode: "ValidationError", wantIn: "at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to 43200"},
	{name: "session_name_1_char", in: sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String("s")},
		wantCode: "ValidationError", wantIn: "at 'roleSessionName' failed to satisfy constraint: Member must have length greater than or equal to 2"},
	{name: "session_name_64_chars", in: sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String(strings.Repeat("a", 64))}},
	{name: "session_name_65_chars", in: sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String(strings.Repeat("a", 65))},
		wantCode: "ValidationError", wantIn: "at 'roleSessionName' failed to satisfy constraint: Member must have length less than or equal to 64"},
	{name: "session_name_bad_char", in: sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String("has space")},
		wantCode: "ValidationError", wantIn: `at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\w+=,.@-]*`},
	{name: "external_id_1_char", in: sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String("s1"), ExternalId: aws.String("x")},
		wantCode: "ValidationError", wantIn: "at 'externalId' failed to satisfy constraint: Member must have length greater than or equal to 2"},
	{name: "external_id_1225_chars", in: sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String("s1"), ExternalId: aws.String(strings.Repeat("x", 1225))},
		wantCode: "ValidationError", wantIn: "at 'externalId' failed to satisfy constraint: Member must have length less than or equal to 1224"},
	{name: "role_arn_short", in: sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::1"), RoleSessionName: aws.String("s1")},
		wantCode: "ValidationError", wantIn: "at 'roleArn' failed to satisfy constraint: Member must have length greater than or equal to 20"},
}

// emuOnlySTSCases cover validation moto does not do.
var emuOnlySTSCases = []stsCase{
	{name: "role_arn_not_a_role", in: sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::123456789012:user/bob"), RoleSessionName: aws.String("s1")},
		wantCode: "ValidationError", wantIn: "is not a valid role ARN"},
	{name: "role_arn_short_account", in: sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::12345:role/x-role-name"), RoleSessionName: aws.String("s1")},
		wantCode: "ValidationError", wantIn: "is not a valid role ARN"},
	{name: "two_errors", in: sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String("s"), DurationSeconds: aws.Int32(1)},
		wantCode: "ValidationError", wantIn: "2 validation errors detected: "},
}

func runAssumeRoleCases(t *testing.T, client *sts.Client, now func() time.Time, cases []stsCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			in := tc.in
			out, err := client.AssumeRole(ctx, &in)
			if tc.wantCode != "" {
				code, msg, _ := apiError(err)
				// Compare with runs of spaces collapsed: moto's wording
				// differs from the service's only in doubled spaces.
				msg = strings.Join(strings.Fields(msg), " ")
				if code != tc.wantCode || !strings.Contains(msg, tc.wantIn) {
					t.Errorf("error (%q, %q), want code %q containing %q", code, msg, tc.wantCode, tc.wantIn)
				}
				return
			}
			if err != nil {
				t.Fatalf("AssumeRole: %v", err)
			}
			c := out.Credentials
			if c == nil || c.AccessKeyId == nil || c.SecretAccessKey == nil || c.SessionToken == nil || c.Expiration == nil {
				t.Fatalf("incomplete credentials %+v", c)
			}
			if !strings.HasPrefix(*c.AccessKeyId, "ASIA") {
				t.Errorf("AccessKeyId %q, want an ASIA temporary key", *c.AccessKeyId)
			}
			d := 3600 * time.Second
			if in.DurationSeconds != nil {
				d = time.Duration(*in.DurationSeconds) * time.Second
			}
			// Whole seconds on the wire; allow the clock to move a little
			// on a real backend.
			if exp := c.Expiration.Sub(now()); exp < d-time.Minute || exp > d+time.Second {
				t.Errorf("expires in %v, want about %v", exp, d)
			}
			wantArn := "arn:aws:sts::123456789012:assumed-role/" + (*in.RoleArn)[strings.LastIndex(*in.RoleArn, "/")+1:] + "/" + *in.RoleSessionName
			if out.AssumedRoleUser == nil || *out.AssumedRoleUser.Arn != wantArn {
				t.Errorf("AssumedRoleUser %+v, want Arn %s", out.AssumedRoleUser, wantArn)
			}
			if !strings.HasSuffix(*out.AssumedRoleUser.AssumedRoleId, ":"+*in.RoleSessionName) {
				t.Errorf("AssumedRoleId %q does not end in :%s", *out.AssumedRoleUser.AssumedRoleId, *in.RoleSessionName)
			}
		})
	}
}

func TestAssumeRoleValidation(t *testing.T) {
	t.Parallel()
	_, url := startEmu(t, Options{})
	runAssumeRoleCases(t, newSTSClient(url, staticCreds), func() time.Time { return testNow }, append(append([]stsCase{}, assumeRoleCases...), emuOnlySTSCases...))
}

func TestAssumeRoleRecordsCallsAndIdentity(t *testing.T) {
	t.Parallel()
	e, url := startEmu(t, Options{})
	client := newSTSClient(url, staticCreds)
	ctx := testContext(t)

	id, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if *id.Account != "123456789012" || *id.Arn != "arn:aws:iam::123456789012:user/awsemu" {
		t.Errorf("static caller identity = %s %s", *id.Account, *id.Arn)
	}

	out, err := client.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String("pod-web"), ExternalId: aws.String("ext-1"), DurationSeconds: aws.Int32(1800)})
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Credentials.Expiration.UTC(); !got.Equal(testNow.Add(30 * time.Minute)) {
		t.Errorf("expiration %v, want clock + 30m", got)
	}
	// A client using the issued credentials is the assumed role.
	assumed := newSTSClient(url, credentials.NewStaticCredentialsProvider(*out.Credentials.AccessKeyId, *out.Credentials.SecretAccessKey, *out.Credentials.SessionToken))
	id, err = assumed.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if *id.Arn != "arn:aws:sts::123456789012:assumed-role/web-role/pod-web" {
		t.Errorf("assumed caller identity = %s", *id.Arn)
	}
	if role, session, ok := e.RoleForAccessKey(*out.Credentials.AccessKeyId); !ok || role != testRole || session != "pod-web" {
		t.Errorf("RoleForAccessKey = %q %q %v", role, session, ok)
	}

	calls := e.STSCalls()
	if len(calls) != 3 {
		t.Fatalf("%d calls recorded, want 3: %+v", len(calls), calls)
	}
	ar := calls[1]
	if ar.Action != "AssumeRole" || ar.RoleArn != testRole || ar.RoleSessionName != "pod-web" || ar.ExternalID != "ext-1" ||
		ar.DurationSeconds != 1800 || ar.CallerAccessKeyID != testAccessKey || ar.AccessKeyID != *out.Credentials.AccessKeyId || ar.ErrorCode != "" {
		t.Errorf("recorded AssumeRole = %+v", ar)
	}
	if calls[2].Action != "GetCallerIdentity" || calls[2].CallerAccessKeyID != *out.Credentials.AccessKeyId {
		t.Errorf("recorded GetCallerIdentity = %+v", calls[2])
	}
}

func TestAssumeRolePolicy(t *testing.T) {
	t.Parallel()
	e, url := startEmu(t, Options{})
	client := newSTSClient(url, staticCreds)
	const other = "arn:aws:iam::123456789012:role/other"
	e.SetAllowedRoles(testRole)
	e.RequireExternalID(testRole, "secret-ext")
	tests := []struct {
		name, role, ext, wantCode string
	}{
		{"allowed_with_external_id", testRole, "secret-ext", ""},
		{"allowed_wrong_external_id", testRole, "wrong-ext", "AccessDenied"},
		{"allowed_missing_external_id", testRole, "", "AccessDenied"},
		{"not_in_allow_list", other, "", "AccessDenied"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := &sts.AssumeRoleInput{RoleArn: aws.String(tc.role), RoleSessionName: aws.String("s1")}
			if tc.ext != "" {
				in.ExternalId = aws.String(tc.ext)
			}
			_, err := client.AssumeRole(testContext(t), in)
			code, msg, _ := apiError(err)
			if code != tc.wantCode {
				t.Fatalf("code %q (%v), want %q", code, err, tc.wantCode)
			}
			if code == "AccessDenied" {
				want := "User: arn:aws:iam::123456789012:user/awsemu is not authorized to perform: sts:AssumeRole on resource: " + tc.role
				if msg != want {
					t.Errorf("message %q, want %q", msg, want)
				}
			}
		})
	}
	var denied int
	for _, c := range e.STSCalls() {
		if c.ErrorCode == "AccessDenied" {
			denied++
		}
	}
	if denied != 3 {
		t.Errorf("%d AccessDenied calls recorded, want 3", denied)
	}
	e.SetAllowedRoles()
	if _, err := client.AssumeRole(testContext(t), &sts.AssumeRoleInput{RoleArn: aws.String(other), RoleSessionName: aws.String("s1")}); err != nil {
		t.Errorf("after clearing the allow-list: %v", err)
	}
}
