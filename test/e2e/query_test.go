//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodekit/nodekit/pkg/logship/query"
	"github.com/nodekit/nodekit/test/kubeapi"
	"github.com/nodekit/nodekit/test/testbed"
)

// queryLine is one line a container wrote, with the runtime timestamp the
// test chose for it.
type queryLine struct {
	c                           *container
	i                           int // position in the written sequence
	ns, pod, cname, stream, msg string
	ts                          time.Time
}

// plain is the line as `logship query` prints it by default.
func (l queryLine) plain() string {
	return fmt.Sprintf("%s/%s/%s  %s  %s", l.ns, l.pod, l.cname, l.ts.UTC().Format("2006-01-02T15:04:05.000Z07:00"), l.msg)
}

// queryAddPod creates a pod with the given containers in the test bed.
func queryAddPod(ctx context.Context, b *lsBed, ns, name string, containers ...string) *corev1.Pod {
	b.t.Helper()
	images := map[string]string{}
	for _, c := range containers {
		images[c] = "registry.example/" + c + ":1"
	}
	p, err := b.bed.AddPod(ctx, kubeapi.PodSpec{Namespace: ns, Name: name, Labels: map[string]string{"app": name}, Containers: images})
	if err != nil {
		b.t.Fatal(err)
	}
	return p.API
}

// queryAddContainer lays out one container's log file and symlink the way
// kubelet does.
func queryAddContainer(b *lsBed, pod *corev1.Pod, cname, format, id string) *container {
	b.t.Helper()
	return b.layOut(pod, cname, format, id)
}

// queryFormat renders l in its container's runtime format.
func queryFormat(l queryLine) string {
	return string(l.c.AppendLine(nil, l.ts, l.stream, true, l.msg))
}

// queryWrite appends lines to their containers' files.
func queryWrite(t *testing.T, lines []queryLine) {
	t.Helper()
	byC := map[*container]*strings.Builder{}
	var order []*container
	for _, l := range lines {
		if byC[l.c] == nil {
			byC[l.c] = &strings.Builder{}
			order = append(order, l.c)
		}
		byC[l.c].WriteString(queryFormat(l))
	}
	for _, c := range order {
		c.write(t, byC[c].String())
	}
}

func queryPlain(lines []queryLine) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.plain() + "\n")
	}
	return b.String()
}

func querySelect(lines []queryLine, keep func(queryLine) bool) []queryLine {
	var out []queryLine
	for _, l := range lines {
		if keep(l) {
			out = append(out, l)
		}
	}
	return out
}

// queryRun runs `logship query` in process against the emulator's
// loopback endpoint and returns stdout.
func queryRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut output
	err := query.Run(t.Context(), args, &out, &errOut)
	return out.String(), err
}

// queryWaitOutput waits, woken by each write, for out to satisfy cond.
func queryWaitOutput(t *testing.T, out *output, done <-chan error, cond func(string) bool) {
	t.Helper()
	timeout := time.After(90 * time.Second)
	for {
		s, next := out.snapshot()
		if cond(s) {
			return
		}
		select {
		case <-next:
		case err := <-done:
			t.Fatalf("follow ended early: %v\n%s", err, out.String())
		case <-timeout:
			t.Fatalf("follow output never reached the expected state; have:\n%s", s)
		}
	}
}

// TestQueryEndToEnd ships logs with logship itself (test bed: sandbox,
// kube-apiserver, awsemu) and reads them back with `logship query`.
func TestQueryEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	b := lsStartBed(t)

	// The command reads the same emulator through a loopback listener in
	// the test's own namespace, configured only through the environment.
	srv := httptest.NewServer(b.bed.AWS)
	t.Cleanup(srv.Close)
	none := filepath.Join(t.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_REGION": b.bed.AWS.Region(), "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": srv.URL,
		"AWS_ACCESS_KEY_ID": "AKIDQUERYE2E", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "",
		"AWS_PROFILE": "", "AWS_CONFIG_FILE": none, "AWS_SHARED_CREDENTIALS_FILE": none,
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}

	web1 := queryAddPod(ctx, b, "shop", "web-7f9c-abc12", "app", "sidecar")
	web2 := queryAddPod(ctx, b, "shop", "web-7f9c-def34", "app")
	api := queryAddPod(ctx, b, "shop", "api-0", "app")
	db := queryAddPod(ctx, b, "infra", "db-0", "postgres")
	conts := []struct {
		c     *container
		pod   *corev1.Pod
		cname string
	}{
		{queryAddContainer(b, web1, "app", "cri", "q1"), web1, "app"},
		{queryAddContainer(b, web1, "sidecar", "cri", "q2"), web1, "sidecar"},
		{queryAddContainer(b, web2, "app", "docker", "q3"), web2, "app"},
		{queryAddContainer(b, api, "app", "cri", "q4"), api, "app"},
		{queryAddContainer(b, db, "postgres", "docker", "q5"), db, "postgres"},
	}
	b.start()

	// 300 lines interleaved across five streams, 3 ms apart so the time
	// order is exact; some on stderr, some mentioning a timeout.
	base := time.Now().Add(-10 * time.Minute).UTC().Truncate(time.Millisecond)
	var all []queryLine
	for i := range 300 {
		k := conts[i%len(conts)]
		l := queryLine{c: k.c, i: i, ns: k.pod.Namespace, pod: k.pod.Name, cname: k.cname, stream: "stdout",
			ts: base.Add(time.Duration(i) * 3 * time.Millisecond), msg: fmt.Sprintf("%s/%s n=%03d", k.pod.Name, k.cname, i)}
		if i%5 == 4 {
			l.stream = "stderr"
		}
		if i%7 == 3 {
			l.msg += " ERROR upstream timeout"
		}
		all = append(all, l)
	}
	queryWrite(t, all)
	for _, k := range conts {
		last := querySelect(all, func(l queryLine) bool { return l.c == k.c })
		b.waitFor(ctx, k.c, last[len(last)-1].msg)
	}

	tests := []struct {
		name string
		args []string
		keep func(queryLine) bool
	}{
		{"namespace", []string{"-n", "shop"}, func(l queryLine) bool { return l.ns == "shop" }},
		{"pod_prefix", []string{"-n", "shop", "web-7f9c*"}, func(l queryLine) bool { return strings.HasPrefix(l.pod, "web-7f9c") }},
		{"pod_and_container", []string{"web-7f9c-abc12", "-n", "shop", "-c", "sidecar"},
			func(l queryLine) bool { return l.pod == "web-7f9c-abc12" && l.cname == "sidecar" }},
		{"container_everywhere", []string{"-c", "app"}, func(l queryLine) bool { return l.cname == "app" }},
		{"grep", []string{"--grep", "upstream timeout"}, func(l queryLine) bool { return strings.Contains(l.msg, "upstream timeout") }},
		{"stderr_regex", []string{"--stream", "stderr", "--regex", `n=0[0-9]4`},
			func(l queryLine) bool {
				return l.stream == "stderr" && strings.Contains(l.msg, "n=0") && l.msg[strings.Index(l.msg, "n=")+4] == '4'
			}},
		{"window", []string{"--start", all[100].ts.Format(time.RFC3339Nano), "--end", all[199].ts.Format(time.RFC3339Nano)},
			func(l queryLine) bool { return !l.ts.Before(all[100].ts) && !l.ts.After(all[199].ts) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--cluster", "e2e", "--page-size", "25"}, tt.args...)
			before := b.bed.AWS.Count("FilterLogEvents")
			got, err := queryRun(t, args...)
			if err != nil {
				t.Fatalf("logship query %q: %v", args, err)
			}
			want := querySelect(all, tt.keep)
			if got != queryPlain(want) {
				t.Fatalf("logship query %q printed\n%s\nwant (%d lines, time order)\n%s", args, got, len(want), queryPlain(want))
			}
			if calls := b.bed.AWS.Count("FilterLogEvents") - before; len(want) > 25 && calls < 2 {
				t.Fatalf("%d lines in %d FilterLogEvents calls, want more than one page", len(want), calls)
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		got, err := queryRun(t, "--cluster", "e2e", "--since", "30m", "-n", "infra", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		want := querySelect(all, func(l queryLine) bool { return l.ns == "infra" })
		rows := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
		if len(rows) != len(want) {
			t.Fatalf("-o json printed %d lines, want %d", len(rows), len(want))
		}
		for i, row := range rows {
			var ev struct {
				Time, Namespace, Pod, Container, Stream, Log, LogStream, EventID string
				Kubernetes                                                       struct {
					PodID  string            `json:"pod_id"`
					Host   string            `json:"host"`
					Image  string            `json:"container_image"`
					Labels map[string]string `json:"labels"`
				}
			}
			if err := json.Unmarshal([]byte(row), &ev); err != nil {
				t.Fatalf("line %d %q: %v", i, row, err)
			}
			w := want[i]
			ts, err := time.Parse(time.RFC3339Nano, ev.Time)
			if err != nil || !ts.Equal(w.ts) || ev.Namespace != w.ns || ev.Pod != w.pod || ev.Container != w.cname ||
				ev.Stream != w.stream || ev.Log != w.msg || ev.LogStream != w.c.Stream || ev.EventID == "" ||
				ev.Kubernetes.PodID != string(db.UID) || ev.Kubernetes.Host != testbed.NodeName || ev.Kubernetes.Labels["app"] != "db-0" {
				t.Fatalf("line %d = %+v, want %+v", i, ev, w)
			}
		}
	})

	t.Run("unknown_group", func(t *testing.T) {
		_, err := queryRun(t, "--cluster", "nope")
		if err == nil || !strings.Contains(err.Error(), `log group "/aws/containerinsights/nope/application" does not exist`) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("query on a missing group = %v, want a one-line 'does not exist'", err)
		}
	})

	t.Run("insights", func(t *testing.T) {
		got, err := queryRun(t, "--cluster", "e2e", "--since", "30m", "-o", "json", "--insights",
			`stats count(*) as n by kubernetes.container_name | sort n desc, kubernetes.container_name asc`)
		if err != nil {
			t.Fatal(err)
		}
		want := `{"kubernetes.container_name":"app","n":"180"}` + "\n" +
			`{"kubernetes.container_name":"postgres","n":"60"}` + "\n" +
			`{"kubernetes.container_name":"sidecar","n":"60"}` + "\n"
		if got != want {
			t.Fatalf("insights printed\n%s\nwant\n%s", got, want)
		}
	})

	// --follow: lines shipped after the command started are printed once.
	t.Run("follow", func(t *testing.T) {
		fctx, stop := context.WithCancel(ctx)
		defer stop()
		var out, errOut output
		done := make(chan error, 1)
		go func() {
			done <- query.Run(fctx, []string{"--cluster", "e2e", "--since", "30m", "-n", "shop", "web-7f9c-def34",
				"-f", "--poll-interval", "100ms", "--page-size", "25"}, &out, &errOut)
		}()
		sel := func(l queryLine) bool { return l.pod == "web-7f9c-def34" }
		before := querySelect(all, sel)
		queryWaitOutput(t, &out, done, func(s string) bool { return s == queryPlain(before) })

		c := conts[2]
		now := time.Now().UTC()
		var more []queryLine
		for i := range 40 {
			more = append(more, queryLine{c: c.c, ns: "shop", pod: c.pod.Name, cname: "app", stream: "stdout",
				ts: now.Add(time.Duration(i) * time.Millisecond), msg: fmt.Sprintf("after follow started %02d", i)})
		}
		queryWrite(t, more)
		want := queryPlain(before) + queryPlain(more)
		queryWaitOutput(t, &out, done, func(s string) bool { return len(s) >= len(want) })
		// Another full round of polls must not repeat anything.
		n := b.bed.AWS.Count("FilterLogEvents")
		if err := b.bed.AWS.WaitFor(ctx, func() bool { return b.bed.AWS.Count("FilterLogEvents") >= n+2 }); err != nil {
			t.Fatal(err)
		}
		stop()
		if err := <-done; err != nil {
			t.Fatalf("follow ended with %v, want nil after cancel", err)
		}
		if got := out.String(); got != want {
			t.Fatalf("follow printed\n%s\nwant\n%s", got, want)
		}
	})

	// Through the logship binary too, inside the node namespace with the
	// node role's credentials from the emulated IMDS.
	t.Run("binary", func(t *testing.T) {
		node := b.bed.Sandbox.Node()
		cmd := node.Command(ctx, b.bin, "query", "--cluster", "e2e", "--since", "30m", "-n", "infra")
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + b.root}, b.bed.AWSEnv()...)
		var stdout, stderr output
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit interface{ ExitCode() int }
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		want := queryPlain(querySelect(all, func(l queryLine) bool { return l.ns == "infra" }))
		if err != nil || stdout.String() != want {
			t.Fatalf("logship query in the node: %v, stderr %q\nstdout\n%s\nwant\n%s", err, stderr.String(), stdout.String(), want)
		}
	})
}
