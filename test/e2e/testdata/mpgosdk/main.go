// Command mpgosdk is the "Go SDK v2 program in a pod" of metaproxy's
// end-to-end test: it resolves credentials through the SDK's default chain
// (which ends at the instance metadata service, IMDSv2 first) and prints the
// access key it got.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "loading config:", err)
		os.Exit(1)
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "retrieving credentials:", err)
		os.Exit(1)
	}
	fmt.Println(creds.AccessKeyID)
}
