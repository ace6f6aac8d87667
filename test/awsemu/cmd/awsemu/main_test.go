package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRunServesAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"--listen", "127.0.0.1:0", "--imds-listen", "127.0.0.1:0",
			"--fault", "DescribeLogGroups:throttle=1", "--region", "eu-central-1"}, pw, io.Discard)
		pw.Close()
		done <- err
	}()
	lines := map[string]string{}
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			lines[k] = v
		}
		if len(lines) == 3 {
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	endpoint, imdsEndpoint := lines["AWS_ENDPOINT_URL"], lines["AWS_EC2_METADATA_SERVICE_ENDPOINT"]
	if endpoint == "" || imdsEndpoint == "" || endpoint == imdsEndpoint || lines["AWS_REGION"] != "eu-central-1" {
		t.Fatalf("printed %v", lines)
	}

	// The fault from the flag is installed and visible in the admin API.
	resp, err := http.Get(endpoint + "/_awsemu/faults")
	if err != nil {
		t.Fatal(err)
	}
	var faults map[string]json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&faults)
	resp.Body.Close()
	if string(faults["DescribeLogGroups"]) != `{"throttleEvery":1}` {
		t.Errorf("faults = %s", faults)
	}
	// The IMDS listener serves IMDS and nothing else.
	for path, want := range map[string]int{"/latest/meta-data/placement/region": 200, "/_awsemu/faults": 404} {
		resp, err := http.Get(imdsEndpoint + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("IMDS listener %s = %d, want %d", path, resp.StatusCode, want)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want error
	}{
		{[]string{"--help"}, flag.ErrHelp},
		{[]string{"--fault", "nonsense"}, nil},
		{[]string{"--log-level", "loud"}, nil},
		{[]string{"--listen", "256.0.0.1:1"}, nil},
		{[]string{"--credentials", "no-colon"}, nil},
	}
	for _, tc := range tests {
		err := run(context.Background(), tc.args, io.Discard, io.Discard)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("run(%v) = %v, want an error (%v)", tc.args, err, tc.want)
		}
	}
}
