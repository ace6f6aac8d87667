package sandbox_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/nodekit/nodekit/test/sandbox"
)

// An IMDS stand-in served in the node namespace at 169.254.169.254:80 and
// queried from a pod, both from this process. (Needs root, so it has no
// Output line and is only compiled by go test.)
func Example() {
	ctx := context.Background()
	sb, err := sandbox.New(ctx, sandbox.Config{Pods: 1}, nil)
	if err != nil {
		log.Print(err)
		return
	}
	defer sb.Close()

	l, err := sb.Node().Listen("tcp", sandbox.MetadataIP+":80")
	if err != nil {
		log.Print(err)
		return
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "i-0123456789abcdef0")
	}))
	srv.Listener.Close()
	srv.Listener = l // the server now accepts inside the node namespace
	srv.Start()
	defer srv.Close()

	pod := sb.Pods()[0]
	resp, err := pod.HTTPClient().Get("http://" + sandbox.MetadataIP + "/latest/meta-data/instance-id")
	if err != nil {
		log.Print(err)
		return
	}
	defer resp.Body.Close()
	id, _ := io.ReadAll(resp.Body)
	fmt.Printf("pod %s (%s) sees instance %s\n", pod.Name(), pod.IP(), id)

	// A program in the pod (curl here, the AWS CLI in e2e tests) reaches the
	// same server.
	out, err := pod.Command(ctx, "curl", "-sS", "--noproxy", "*", "http://"+sandbox.MetadataIP+"/latest/meta-data/instance-id").Output()
	fmt.Printf("curl in the pod: %s %v\n", out, err)
}
