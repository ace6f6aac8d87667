package awsemu

import (
	"net/http/httptest"
	"testing"
)

// StartServer serves a new Emulator on a loopback httptest server for the
// duration of a test and returns it with its base URL (use it as the SDK's
// BaseEndpoint, AWS_ENDPOINT_URL_* or the IMDS endpoint). Cleanup releases
// blackholed requests before closing the server, so a test that leaves a
// Blackhole fault installed still finishes.
func StartServer(tb testing.TB, opts Options) (*Emulator, string) {
	tb.Helper()
	e := New(opts)
	srv := httptest.NewServer(e)
	tb.Cleanup(func() {
		e.ClearFaults()
		srv.Close()
	})
	return e, srv.URL
}
