package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"

	"github.com/nodekit/nodekit/pkg/logship/record"

	"github.com/nodekit/nodekit/test/agentproc"
)

// webLines is how many access-log lines the web pod writes; the kubelet
// rotates its log halfway.
const webLines = 24

// stackTrace is what the invoicer prints when an invoice fails: one message
// over several lines, which logship joins into one event (--multiline).
const stackTrace = `ERROR invoice 2041 failed
java.lang.IllegalStateException: no exchange rate for EUR->CHF on 2026-11-21
	at com.example.billing.Invoice.total(Invoice.java:88)
	at com.example.billing.Run.process(Run.java:41)
Caused by: java.lang.NullPointerException: rate is null
	at com.example.fx.Rates.lookup(Rates.java:19)
	... 2 more`

// webLine is the web pod's nth access-log line.
func webLine(n int) string {
	return fmt.Sprintf(`100.96.0.9 - - "GET /cart/%d HTTP/1.1" 200 %d "-" "shop-client/1.0" seq=%d`, n, 400+n, n)
}

// writeLogs makes the pods' containers write, playing the container runtime
// and the kubelet (including a rotation). It returns how many events each
// stream must end up with.
func (d *demo) writeLogs() (map[string]int, error) {
	want := map[string]int{}
	for _, p := range d.pods {
		var err error
		switch p.name {
		case "web":
			for i := 1; i <= webLines && err == nil; i++ {
				err = p.log.Print("stdout", webLine(i))
				if i == webLines/2 && err == nil {
					var rotated string
					if rotated, err = p.log.Rotate(); err == nil {
						d.out.Detail("shop/web: the kubelet rotated its log after line %d: %s", i, filepath.Base(rotated))
					}
				}
			}
			want[p.log.Stream] = webLines
		case "invoicer":
			for _, msg := range []string{"INFO invoice run started batch=42", stackTrace, "INFO invoice run finished ok=41 failed=1"} {
				if err == nil {
					err = p.log.Print("stdout", msg)
				}
			}
			want[p.log.Stream] = 3
		default:
			err = p.log.Print("stderr", "WARN no credentials for role "+p.role+"; running without AWS access")
			want[p.log.Stream] = 1
		}
		if err != nil {
			return nil, err
		}
	}
	return want, nil
}

func (d *demo) logs(ctx context.Context) {
	done := d.out.Step("containers write: shop/web 24 access-log lines (rotated halfway), billing/invoicer a Java stack trace, guest/intruder a warning")
	want, err := d.writeLogs()
	done(err)
	if err != nil {
		d.fail("writing container logs", err)
		return
	}
	if !d.agentUp("logship") {
		d.out.Detail("skipped the read-back: logship is not running (see above)")
		return
	}
	done = d.out.Step("waiting for the events in CloudWatch Logs (the emulator)")
	wctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	err = d.bed.AWS.WaitFor(wctx, func() bool {
		for stream, n := range want {
			if len(d.bed.AWS.Events(logGroup, stream)) < n {
				return false
			}
		}
		return true
	})
	cancel()
	done(err)
	d.out.Detail("log group %s", logGroup)
	for _, stream := range d.bed.AWS.LogStreams(logGroup) {
		d.out.Detail("  stream %-90s %d events", stream, len(d.bed.AWS.Events(logGroup, stream)))
	}
	if err != nil {
		for stream, n := range want {
			if got := len(d.bed.AWS.Events(logGroup, stream)); got < n {
				d.out.Detail("  stream %s: %d of %d events", stream, got, n)
			}
		}
		d.out.Detail("logship's last lines:")
		d.out.Block("     | ", d.agents["logship"].Tail(10))
		d.fail("shipping logs", err)
		return
	}
	for _, p := range d.pods {
		d.checkStream(p)
	}
	d.readBack(ctx)
}

// checkStream says what is special about each pod's shipped events: the web
// pod's lines all arrived once, in order, across the rotation; the invoicer's
// stack trace is one event.
func (d *demo) checkStream(p *demoPod) {
	evs := d.bed.AWS.Events(logGroup, p.log.Stream)
	var recs []record.Record
	for _, ev := range evs {
		var r record.Record
		if err := json.Unmarshal([]byte(ev.Message), &r); err != nil {
			d.fail("decoding a shipped record of "+p.name, fmt.Errorf("%w: %s", err, oneLine(ev.Message, 200)))
			return
		}
		recs = append(recs, r)
	}
	switch p.name {
	case "web":
		for i, r := range recs {
			if i >= webLines || r.Log != webLine(i+1) {
				d.fail("shop/web lines", fmt.Errorf("event %d is %q, want %q", i, r.Log, webLine(i+1)))
				return
			}
		}
		if len(recs) != webLines {
			d.fail("shop/web lines", fmt.Errorf("%d events, want %d", len(recs), webLines))
			return
		}
		d.out.Detail("shop/web: all %d lines shipped once and in order across the rotation", webLines)
	case "invoicer":
		for _, r := range recs {
			if strings.HasPrefix(r.Log, "ERROR") {
				if r.Log != stackTrace {
					d.fail("billing/invoicer stack trace", fmt.Errorf("joined event is %q", r.Log))
					return
				}
				d.out.Detail("billing/invoicer: the %d-line stack trace is one event:", strings.Count(stackTrace, "\n")+1)
				pretty, _ := json.MarshalIndent(r, "", "  ")
				d.out.Block("     ", string(pretty))
				return
			}
		}
		d.fail("billing/invoicer stack trace", fmt.Errorf("no ERROR event among %d", len(recs)))
	}
}

// queryArgs are the `logship query` runs the demo shows.
var queryArgs = [][]string{
	{"--cluster", clusterName, "-n", "billing", "invoicer", "--since", "15m"},
	// The lines either side of the rotation after line 12.
	{"--cluster", clusterName, "-n", "shop", "web*", "--regex", "seq=1[1-4]$", "--since", "15m"},
	{"--cluster", clusterName, "--insights", "stats count(*) as events by kubernetes.namespace_name, kubernetes.pod_name", "--since", "15m", "--poll-interval", "200ms"},
}

// readBack reads shipped records the way an SRE would: `logship query`, or,
// while that subcommand is not wired into the binary yet, CloudWatch's
// FilterLogEvents API directly (and says so).
func (d *demo) readBack(ctx context.Context) {
	bin := filepath.Join(d.binDir, "logship")
	for _, args := range queryArgs {
		done := d.out.Step("logship query " + shellJoin(args))
		out, err := d.nodeRun(ctx, bin, append([]string{"query"}, args...)...)
		if err != nil && strings.Contains(err.Error(), "not implemented") {
			done(nil)
			d.out.Detail("this logship binary has no `query` yet (%s)", oneLine(err.Error(), 120))
			d.readBackAPI(ctx)
			return
		}
		done(err)
		if err != nil {
			d.fail("logship query "+shellJoin(args), err)
			continue
		}
		d.out.Block("     | ", agentproc.LastLines(out, 14))
	}
}

// readBackAPI reads the billing namespace's records with FilterLogEvents.
func (d *demo) readBackAPI(ctx context.Context) {
	done := d.out.Step("reading back with the CloudWatch Logs API instead (FilterLogEvents, { $.kubernetes.namespace_name = \"billing\" })")
	lines, err := d.filterLogEvents(ctx, `{ $.kubernetes.namespace_name = "billing" }`)
	done(err)
	if err != nil {
		d.fail("FilterLogEvents", err)
		return
	}
	d.out.Block("     | ", strings.Join(lines, "\n"))
}

// nodeRun runs a program in the node namespace with the agents' AWS
// environment and returns its output.
func (d *demo) nodeRun(ctx context.Context, name string, args ...string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := d.bed.Sandbox.Node().Command(cctx, name, args...)
	cmd.Env = d.agentEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, agentproc.LastLines(strings.TrimSpace(stderr.String()), 3))
	}
	return stdout.String(), nil
}

// filterLogEvents reads the demo's log group through the AWS SDK, from
// inside the node (the emulator listens only there).
func (d *demo) filterLogEvents(ctx context.Context, pattern string) ([]string, error) {
	client := cloudwatchlogs.New(cloudwatchlogs.Options{
		Region:       d.bed.AWS.Region(),
		BaseEndpoint: aws.String("http://" + d.bed.AWSAddr()),
		HTTPClient:   d.bed.Sandbox.Node().HTTPClient(),
		// The emulator accepts any signature unless run strict.
		Credentials: credentials.NewStaticCredentialsProvider("AKIDDEMO", "demo", ""),
	})
	in := &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(logGroup), FilterPattern: aws.String(pattern)}
	var lines []string
	for p := cloudwatchlogs.NewFilterLogEventsPaginator(client, in); p.HasMorePages(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("FilterLogEvents on %s: %w", logGroup, err)
		}
		for _, ev := range page.Events {
			var r record.Record
			if err := json.Unmarshal([]byte(aws.ToString(ev.Message)), &r); err != nil {
				continue
			}
			lines = append(lines, fmt.Sprintf("%s/%s/%s  %s  %s", r.Kubernetes.NamespaceName, r.Kubernetes.PodName,
				r.Kubernetes.ContainerName, r.Time, strings.ReplaceAll(r.Log, "\n", "\n"+strings.Repeat(" ", 8))))
		}
	}
	return lines, nil
}

// shellJoin quotes args for display.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " *?[]'\"$()|;&<>\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
