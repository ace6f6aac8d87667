package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
)

// sdkCredentialsCmd is the hidden subcommand run inside a pod: the demo
// binary doubles as an application using the AWS SDK for Go v2, so the demo
// needs no extra build step.
const sdkCredentialsCmd = "sdk-credentials"

// podCredentials is what an application in a pod learned; never the secret
// parts.
type podCredentials struct {
	AccessKeyID string `json:"AccessKeyId"`
	Source      string `json:"Source,omitempty"`
	Expiration  string `json:"Expiration,omitempty"`
}

// sdkCredentials resolves credentials through the SDK's default chain which,
// in a pod with no AWS settings, ends at the instance metadata service that
// metaproxy intercepts. It prints podCredentials as JSON.
func sdkCredentials(stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "loading AWS config:", err)
		return 1
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "retrieving credentials:", err)
		return 1
	}
	err = json.NewEncoder(stdout).Encode(podCredentials{
		AccessKeyID: creds.AccessKeyID,
		Source:      creds.Source,
		Expiration:  creds.Expires.UTC().Format(time.RFC3339),
	})
	if err != nil {
		fmt.Fprintln(stderr, "writing credentials:", err)
		return 1
	}
	return 0
}
