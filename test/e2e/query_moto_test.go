//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/nodekit/nodekit/pkg/logship/record"
	"github.com/nodekit/nodekit/test/awsemu"
)

// TestQueryAgainstMoto runs the logship binary's `query` against moto_server,
// a store that is not ours: moto answers a JSON filter pattern with every
// event of the group, and `logship query -n shop 'web*'` once printed every
// pod's lines there. The selection must hold whatever the store filters.
func TestQueryAgainstMoto(t *testing.T) {
	url := awsemu.StartMoto(t)
	const group = "/aws/containerinsights/moto/application"
	ctx := t.Context()
	client := cloudwatchlogs.New(cloudwatchlogs.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: awscreds.NewStaticCredentialsProvider("AKIDMOTOE2E", "secret", ""),
	})
	if _, err := client.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(group)}); err != nil {
		t.Fatal(err)
	}
	type line struct{ ns, pod, container, stream, msg string }
	pods := []struct{ ns, pod, container string }{
		{"shop", "web-1", "app"}, {"shop", "web-2", "app"}, {"shop", "web-2", "sidecar"},
		{"shop", "api-0", "app"}, {"infra", "web-1", "app"}, {"infra", "db-0", "postgres"},
	}
	base := time.Now().Add(-10 * time.Minute).UTC().Truncate(time.Millisecond)
	var all []line
	var plain []string
	byStream := map[string][]types.InputLogEvent{}
	var order []string
	for i := range 60 {
		p := pods[i%len(pods)]
		l := line{ns: p.ns, pod: p.pod, container: p.container, stream: "stdout", msg: fmt.Sprintf("%s/%s n=%02d", p.pod, p.container, i)}
		if i%4 == 3 {
			l.stream = "stderr"
		}
		if i%5 == 2 {
			l.msg += " upstream timeout"
		}
		ts := base.Add(time.Duration(i) * 10 * time.Millisecond)
		rec, err := json.Marshal(record.Record{Log: l.msg, Stream: l.stream, Time: ts.Format(time.RFC3339Nano),
			Kubernetes: record.Kubernetes{PodName: l.pod, NamespaceName: l.ns, ContainerName: l.container, DockerID: fmt.Sprint("c", i%len(pods))}})
		if err != nil {
			t.Fatal(err)
		}
		stream := fmt.Sprintf("%s_%s_%s-c%d", l.pod, l.ns, l.container, i%len(pods))
		if _, ok := byStream[stream]; !ok {
			order = append(order, stream)
		}
		byStream[stream] = append(byStream[stream], types.InputLogEvent{Timestamp: aws.Int64(ts.UnixMilli()), Message: aws.String(string(rec))})
		all = append(all, l)
		plain = append(plain, fmt.Sprintf("%s/%s/%s  %s  %s", l.ns, l.pod, l.container, ts.Format("2006-01-02T15:04:05.000Z07:00"), l.msg))
	}
	for _, s := range order {
		if _, err := client.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(group), LogStreamName: aws.String(s)}); err != nil {
			t.Fatal(err)
		}
		if _, err := client.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(group), LogStreamName: aws.String(s), LogEvents: byStream[s]}); err != nil {
			t.Fatal(err)
		}
	}

	bin := logshipBinary(t)
	none := filepath.Join(t.TempDir(), "none")
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"AWS_REGION=us-east-1", "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS=" + url,
		"AWS_ACCESS_KEY_ID=AKIDMOTOE2E", "AWS_SECRET_ACCESS_KEY=secret",
		"AWS_CONFIG_FILE=" + none, "AWS_SHARED_CREDENTIALS_FILE=" + none, "AWS_EC2_METADATA_DISABLED=true"}
	for _, tc := range []struct {
		name string
		args []string
		keep func(line) bool
	}{
		{"namespace_and_pod_glob", []string{"-n", "shop", "web*"}, func(l line) bool { return l.ns == "shop" && strings.HasPrefix(l.pod, "web") }},
		{"container", []string{"-n", "shop", "-c", "sidecar"}, func(l line) bool { return l.ns == "shop" && l.container == "sidecar" }},
		{"stderr_in_namespace", []string{"-n", "infra", "--stream", "stderr"}, func(l line) bool { return l.ns == "infra" && l.stream == "stderr" }},
		{"grep", []string{"--grep", "upstream timeout"}, func(l line) bool { return strings.Contains(l.msg, "upstream timeout") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.CommandContext(ctx, bin, append([]string{"query", "--cluster", "moto", "--since", "1h"}, tc.args...)...)
			cmd.Env = env
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("logship query %q: %v\n%s", tc.args, err, stderr.String())
			}
			var want strings.Builder
			for i, l := range all {
				if tc.keep(l) {
					want.WriteString(plain[i] + "\n")
				}
			}
			if stdout.String() != want.String() {
				t.Fatalf("logship query %q against moto printed\n%s\nwant\n%s", tc.args, stdout.String(), want.String())
			}
		})
	}
}

// logshipBinary is make build's bin/logship when $NODEKIT_BIN names it,
// else a fresh build.
func logshipBinary(t testing.TB) string {
	if dir := os.Getenv("NODEKIT_BIN"); dir != "" {
		bin := filepath.Join(dir, "logship")
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("NODEKIT_BIN=%s: %v", dir, err)
		}
		return bin
	}
	return mpBuild(t, t.TempDir(), "./cmd/logship", "logship")
}
