package awsemu

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestCompileFilter(t *testing.T) {
	t.Parallel()
	const (
		k8s     = `{"log":"GET /x","kubernetes":{"namespace_name":"shop","pod_name":"web-7d9f","labels":{"app":"web"}},"status":503,"latency":0.25,"ok":false,"gone":null,"tags":["a","b"]}`
		errLine = `[ERROR 401] UNAUTHORIZED REQUEST user_id=42`
	)
	tests := []struct {
		pattern string
		msg     string
		want    bool
	}{
		{"", "anything", true},
		{"   ", "anything", true},
		// Terms.
		{"ERROR", errLine, true},
		{"error", errLine, false}, // case-sensitive
		{"ERR", errLine, false},   // whole words only
		{"AUTHORIZED", errLine, false},
		{"ERROR REQUEST", errLine, true},
		{"ERROR WARN", errLine, false},
		{"ERROR -UNAUTHORIZED", errLine, false},
		{"ERROR -Exiting", errLine, true},
		{"?WARN ?ERROR", errLine, true},
		{"?WARN ?INFO", errLine, false},
		{`"ERROR 401"`, errLine, true},
		{`"ERROR 402"`, errLine, false},
		{`"user_id=42"`, errLine, true},
		{`"user_id=4"`, errLine, false},
		// Regex.
		{`%UNAUTH[A-Z]+%`, errLine, true},
		{`%^\[ERROR 40\d\]%`, errLine, true},
		{`%^REQUEST%`, errLine, false},
		// JSON.
		{`{ $.kubernetes.namespace_name = "shop" }`, k8s, true},
		{`{$.kubernetes.namespace_name="shop"}`, k8s, true},
		{`{ $.kubernetes.namespace_name = "Shop" }`, k8s, false},
		{`{ $.kubernetes.namespace_name = shop }`, k8s, true},
		{`{ $.kubernetes.pod_name = "web-*" }`, k8s, true},
		{`{ $.kubernetes.pod_name = "*-7d9f" }`, k8s, true},
		{`{ $.kubernetes.pod_name = "db-*" }`, k8s, false},
		{`{ $.kubernetes.namespace_name != "shop" }`, k8s, false},
		{`{ $.kubernetes.namespace_name != "infra" }`, k8s, true},
		{`{ $.missing != "x" }`, k8s, false},
		{`{ $.status = 503 }`, k8s, true},
		{`{ $.status = 503.0 }`, k8s, true},
		{`{ $.status > 500 }`, k8s, true},
		{`{ $.status >= 503 }`, k8s, true},
		{`{ $.status < 503 }`, k8s, false},
		{`{ $.status <= 503 }`, k8s, true},
		{`{ $.latency < 0.5 }`, k8s, true},
		{`{ $.status > 500 && $.kubernetes.namespace_name = "shop" }`, k8s, true},
		{`{ $.status > 500 && $.kubernetes.namespace_name = "infra" }`, k8s, false},
		{`{ $.status < 500 || $.kubernetes.labels.app = "web" }`, k8s, true},
		{`{ ($.status < 500 || $.ok IS FALSE) && $.tags[1] = "b" }`, k8s, true},
		{`{ $.tags[0] = "b" }`, k8s, false},
		{`{ $.tags[5] = "b" }`, k8s, false},
		{`{ $.gone IS NULL }`, k8s, true},
		{`{ $.ok IS NULL }`, k8s, false},
		{`{ $.ok IS TRUE }`, k8s, false},
		{`{ $.nothere NOT EXISTS }`, k8s, true},
		{`{ $.status NOT EXISTS }`, k8s, false},
		{`{ $.kubernetes.pod_name = %^web-[0-9a-f]+$% }`, k8s, true},
		{`{ $.status = 503 }`, "not json at all", false},
		{`{ $.status = 503 }`, `[1,2,3]`, false},
		{`{ $.status > 500 }`, `{"status":"503"}`, false}, // numeric comparison needs a number
	}
	for _, tc := range tests {
		m, err := compileFilter(tc.pattern)
		if err != nil {
			t.Errorf("compileFilter(%q): %v", tc.pattern, err)
			continue
		}
		if got := m(tc.msg); got != tc.want {
			t.Errorf("%q on %q = %v, want %v", tc.pattern, tc.msg, got, tc.want)
		}
	}
}

func TestCompileFilterRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern     string
		unsupported bool // refused as unimplemented rather than malformed
	}{
		{`[ip, user, ...]`, true},
		{`?ERROR WARN`, true},
		{`{ $.a = 1 && $.b = 2 || $.c = 3 }`, true},
		{`{ $.a[*] = 1 }`, true},
		{`{ $.a = "x\"y" }`, true},
		{`foo.bar`, false},
		{`"unterminated`, false},
		{`{ $.a = }`, false},
		{`{ $.a > "x" }`, false},
		{`{ $.a = 1`, false},
		{`{ a = 1 }`, false},
		{`{ $.a IS MAYBE }`, false},
		{`%(group)%`, false},
		{`%%`, false},
	}
	for _, tc := range tests {
		_, err := compileFilter(tc.pattern)
		if err == nil {
			t.Errorf("compileFilter(%q) accepted", tc.pattern)
			continue
		}
		if got := errors.Is(err, errUnsupported); got != tc.unsupported {
			t.Errorf("compileFilter(%q) = %v; unsupported=%v, want %v", tc.pattern, err, got, tc.unsupported)
		}
	}
}

// FuzzCompileFilter checks that no pattern or message panics.
func FuzzCompileFilter(f *testing.F) {
	f.Add(`{ $.a.b[0] = "x*" && ($.c > 1 || $.d IS NULL) }`, `{"a":{"b":["xy"]},"c":2}`)
	f.Add(`?ERROR ?"a b" -c`, "ERROR a b")
	f.Add(`%^a.*b$%`, "ab")
	f.Fuzz(func(t *testing.T, pattern, msg string) {
		m, err := compileFilter(pattern)
		if err == nil {
			m(msg)
		}
	})
}

// FuzzLogsRequest feeds arbitrary bodies to every CloudWatch Logs operation:
// bad input must be answered, never panic.
func FuzzLogsRequest(f *testing.F) {
	f.Add("PutLogEvents", `{"logGroupName":"g","logStreamName":"s","logEvents":[{"timestamp":1,"message":"x"}]}`)
	f.Add("FilterLogEvents", `{"logGroupName":"g","filterPattern":"{ $.a = 1 }","nextToken":"ZS8xLzI"}`)
	f.Add("GetLogEvents", `{"logGroupName":"g","logStreamName":"s","nextToken":"f/1/2","limit":0}`)
	f.Add("DescribeLogStreams", `{"logGroupName":"g","nextToken":"bz8x"}`)
	e := New(Options{})
	for _, body := range []string{`{"logGroupName":"g"}`} {
		_, _ = e.createLogGroup([]byte(body))
		_, _ = e.createLogStream([]byte(`{"logGroupName":"g","logStreamName":"s"}`))
	}
	f.Fuzz(func(t *testing.T, op, body string) {
		req, err := http.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("X-Amz-Target", logsTargetPrefix+op)
		rec := newRecorder()
		e.ServeHTTP(rec, req)
		if rec.status == 0 {
			t.Fatalf("%s %q: no status", op, body)
		}
	})
}
