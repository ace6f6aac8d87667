package awsemu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// awsCLI runs the AWS CLI against the emulator with static fake
// credentials, an empty home and no config files, so nothing from the
// machine's AWS setup is used and nothing leaves loopback.
type awsCLI struct {
	bin, url, home string
}

func newAWSCLI(t *testing.T, url string) *awsCLI {
	t.Helper()
	bin, err := exec.LookPath("aws")
	if err != nil {
		t.Skip("aws CLI not on PATH; skipping the AWS CLI cross-check (Debian: apt-get install awscli)")
	}
	return &awsCLI{bin: bin, url: url, home: t.TempDir()}
}

func (c *awsCLI) run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.CommandContext(testContext(t), c.bin, append(args, "--endpoint-url", c.url, "--output", "json")...)
	cmd.Dir = c.home
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + c.home,
		"AWS_ACCESS_KEY_ID=" + testAccessKey,
		"AWS_SECRET_ACCESS_KEY=" + testSecret,
		"AWS_DEFAULT_REGION=" + DefaultRegion,
		"AWS_REGION=" + DefaultRegion,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(c.home, "no-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(c.home, "no-credentials"),
		"AWS_PAGER=",
	}
	if v := os.Getenv("PYENV_ROOT"); v != "" {
		cmd.Env = append(cmd.Env, "PYENV_ROOT="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

func (c *awsCLI) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, err := c.run(t, args...)
	if err != nil {
		t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

func TestAWSCLILogs(t *testing.T) {
	t.Parallel()
	e, url := startEmu(t, Options{})
	cli := newAWSCLI(t, url)
	now := testNow.UnixMilli()

	cli.mustRun(t, "logs", "create-log-group", "--log-group-name", "/cli/app")
	cli.mustRun(t, "logs", "create-log-stream", "--log-group-name", "/cli/app", "--log-stream-name", "web")
	events := fmt.Sprintf(`[{"timestamp":%d,"message":"{\"kubernetes\":{\"namespace_name\":\"shop\"}}"},{"timestamp":%d,"message":"plain line"},{"timestamp":%d,"message":"from the future"}]`,
		now, now+1, now+3*hourMs)
	out := cli.mustRun(t, "logs", "put-log-events", "--log-group-name", "/cli/app", "--log-stream-name", "web", "--log-events", events)
	var put struct {
		NextSequenceToken     string
		RejectedLogEventsInfo map[string]int
	}
	if err := json.Unmarshal([]byte(out), &put); err != nil {
		t.Fatalf("put-log-events output %q: %v", out, err)
	}
	if put.NextSequenceToken == "" || put.RejectedLogEventsInfo["tooNewLogEventStartIndex"] != 2 {
		t.Errorf("put-log-events answered %s", out)
	}
	if got := e.Events("/cli/app", "web"); len(got) != 2 || got[1].Message != "plain line" {
		t.Errorf("stored %+v", got)
	}

	out = cli.mustRun(t, "logs", "filter-log-events", "--log-group-name", "/cli/app", "--filter-pattern", `{ $.kubernetes.namespace_name = "shop" }`)
	var filtered struct{ Events []struct{ Message string } }
	if err := json.Unmarshal([]byte(out), &filtered); err != nil || len(filtered.Events) != 1 {
		t.Errorf("filter-log-events = %s (%v)", out, err)
	}

	_, stderr, err := cli.run(t, "logs", "put-log-events", "--log-group-name", "/cli/app", "--log-stream-name", "nope",
		"--log-events", fmt.Sprintf(`[{"timestamp":%d,"message":"x"}]`, now))
	if err == nil || !strings.Contains(stderr, "ResourceNotFoundException") || !strings.Contains(stderr, "The specified log stream does not exist.") {
		t.Errorf("put to a missing stream: err %v, stderr %q", err, stderr)
	}
	_, stderr, err = cli.run(t, "logs", "put-log-events", "--log-group-name", "/cli/app", "--log-stream-name", "web",
		"--log-events", fmt.Sprintf(`[{"timestamp":%d,"message":"b"},{"timestamp":%d,"message":"a"}]`, now, now-1))
	if err == nil || !strings.Contains(stderr, "InvalidParameterException") || !strings.Contains(stderr, msgNotChronological) {
		t.Errorf("unordered put: err %v, stderr %q", err, stderr)
	}
}

func TestAWSCLISTS(t *testing.T) {
	t.Parallel()
	e, url := startEmu(t, Options{})
	cli := newAWSCLI(t, url)

	out := cli.mustRun(t, "sts", "assume-role", "--role-arn", testRole, "--role-session-name", "cli-session", "--duration-seconds", "900")
	var ar struct {
		Credentials     struct{ AccessKeyId, SecretAccessKey, SessionToken, Expiration string }
		AssumedRoleUser struct{ Arn string }
	}
	if err := json.Unmarshal([]byte(out), &ar); err != nil {
		t.Fatalf("assume-role output %q: %v", out, err)
	}
	if !strings.HasPrefix(ar.Credentials.AccessKeyId, "ASIA") || ar.AssumedRoleUser.Arn != "arn:aws:sts::123456789012:assumed-role/web-role/cli-session" {
		t.Errorf("assume-role = %s", out)
	}
	calls := e.STSCalls()
	if len(calls) != 1 || calls[0].CallerAccessKeyID != testAccessKey || calls[0].DurationSeconds != 900 || calls[0].RoleSessionName != "cli-session" {
		t.Errorf("recorded %+v", calls)
	}

	out = cli.mustRun(t, "sts", "get-caller-identity")
	if !strings.Contains(out, `"arn:aws:iam::123456789012:user/awsemu"`) {
		t.Errorf("get-caller-identity = %s", out)
	}

	_, stderr, err := cli.run(t, "sts", "assume-role", "--role-arn", testRole, "--role-session-name", "bad name")
	if err == nil || !strings.Contains(stderr, "ValidationError") || !strings.Contains(stderr, "roleSessionName") {
		t.Errorf("bad session name: err %v, stderr %q", err, stderr)
	}
}

// TestAWSCLIStrictSignatures checks the SigV4 verification of strict mode
// against an independent signer (botocore's), both ways.
func TestAWSCLIStrictSignatures(t *testing.T) {
	t.Parallel()
	e, url := startEmu(t, Options{StrictCredentials: true})
	cli := newAWSCLI(t, url)
	e.AddCredentials(testAccessKey, testSecret)
	cli.mustRun(t, "logs", "create-log-group", "--log-group-name", "/strict")
	cli.mustRun(t, "sts", "get-caller-identity")

	e2, url2 := startEmu(t, Options{StrictCredentials: true})
	e2.AddCredentials(testAccessKey, "a-different-secret")
	wrong := newAWSCLI(t, url2)
	_, stderr, err := wrong.run(t, "logs", "describe-log-groups")
	if err == nil || !strings.Contains(stderr, "InvalidSignatureException") {
		t.Errorf("wrong secret on Logs: err %v, stderr %q", err, stderr)
	}
	_, stderr, err = wrong.run(t, "sts", "get-caller-identity")
	if err == nil || !strings.Contains(stderr, "SignatureDoesNotMatch") {
		t.Errorf("wrong secret on STS: err %v, stderr %q", err, stderr)
	}
}
