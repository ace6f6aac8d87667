package awsemu

import (
	"bufio"
	"context"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// startMoto runs moto_server (an independent AWS emulator) on a loopback
// port it picks itself, and stops it when the test ends. Tests using it
// skip when moto is not installed: it is optional.
func startMoto(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		t.Skip("moto_server not on PATH; skipping the cross-check against moto (optional: pip install 'moto[server]')")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-H", "127.0.0.1", "-p", "0")
	// Its own process group, so wrapper scripts (pyenv shims) and the
	// server die together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	stderr, err := cmd.StderrPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting moto_server: %v", err)
	}
	urlc := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		re := regexp.MustCompile(`Running on (http://127\.0\.0\.1:\d+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urlc <- m[1]:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-scanned
		_ = cmd.Wait()
	})
	select {
	case url := <-urlc:
		return url
	case <-scanned:
		t.Fatal("moto_server exited before announcing its address")
	case <-time.After(2 * time.Minute):
		t.Fatal("moto_server did not announce its address within 2 minutes")
	}
	return ""
}

// TestMotoAgreesOnPutLogEvents runs the PutLogEvents table against moto.
// Cases moto does not implement the same way are listed in motoSkips with
// the reason, so the comparison stays honest.
func TestMotoAgreesOnPutLogEvents(t *testing.T) {
	t.Parallel()
	url := startMoto(t)
	var cases []putCase
	for _, tc := range putLogEventsCases {
		if tc.exactClock {
			continue
		}
		if why, ok := motoSkips[tc.name]; ok {
			t.Logf("not compared with moto: %s: %s", tc.name, why)
			continue
		}
		cases = append(cases, tc)
	}
	runPutLogEventsCases(t, newLogsClient(url, 1), time.Now, cases)
}

func TestMotoAgreesOnAssumeRole(t *testing.T) {
	t.Parallel()
	url := startMoto(t)
	var cases []stsCase
	for _, tc := range assumeRoleCases {
		if why, ok := motoSkips["sts/"+tc.name]; ok {
			t.Logf("not compared with moto: %s: %s", tc.name, why)
			continue
		}
		cases = append(cases, tc)
	}
	runAssumeRoleCases(t, newSTSClient(url, staticCreds), time.Now, cases)
}

// motoSkips names table cases where moto (5.x) knowingly differs from the
// real service, with why. Filled from running the tables against moto.
var motoSkips = map[string]string{
	"batch_one_byte_over":              "moto does not enforce the 1,048,576-byte batch limit",
	"batch_over_by_per_event_overhead": "moto does not enforce the 1,048,576-byte batch limit",
	"10001_events":                     "moto does not apply the API's request validation (list length)",
	"no_events":                        "moto does not apply the API's request validation (list length)",
	"empty_message":                    "moto does not apply the API's request validation (message length)",
	"event_one_byte_over_max_size":     "moto does not enforce the per-event size limit",
	"span_24h_plus_1ms":                "moto does not enforce the 24-hour batch span",
	"too_old": "moto answers tooOldLogEventEndIndex as the last too-old index; the API reference " +
		"calls the field exclusive (a count), which the emulator follows",
	"older_than_retention":          "moto does not reject events older than the group's retention",
	"sts/duration_899":              "moto does not validate DurationSeconds",
	"sts/duration_43201":            "moto does not validate DurationSeconds",
	"sts/session_name_1_char":       "moto only checks RoleSessionName's maximum length",
	"sts/session_name_bad_char":     "moto does not check RoleSessionName's characters",
	"sts/external_id_1_char":        "moto does not validate ExternalId",
	"sts/external_id_1225_chars":    "moto does not validate ExternalId",
	"errors/create_stream_twice":    "moto answers every ResourceAlreadyExistsException with the log-group message",
	"errors/delete_missing_stream":  "moto answers a missing stream here with its generic log-group message",
	"errors/get_missing_stream":     "moto answers a missing stream here with its generic log-group message",
	"errors/retention_not_in_enum":  "moto does not validate retentionInDays",
	"errors/bad_group_name":         "moto does not validate log group names",
	"errors/stream_name_with_colon": "moto does not validate log stream names",
	"sts/role_arn_short":            "moto does not validate RoleArn",
}

// TestMotoAgreesOnResourceErrors runs the not-found / already-exists table
// against moto.
func TestMotoAgreesOnResourceErrors(t *testing.T) {
	t.Parallel()
	url := startMoto(t)
	runResourceErrorCases(t, newLogsClient(url, 1), time.Now(), func(name string) (string, bool) {
		why, ok := motoSkips["errors/"+name]
		return why, ok
	})
}
