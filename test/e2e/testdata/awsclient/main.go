// Command awsclient is an application pod's AWS SDK for Go v2 program in the
// end-to-end tests: it resolves credentials through the SDK's default chain
// (which, in a pod, ends at the instance metadata service) and prints what it
// got as JSON, without the secret parts.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

type result struct {
	AccessKeyID string `json:"AccessKeyId"`
	Source      string `json:"Source"`
	Expires     string `json:"Expires"`
	Region      string `json:"Region"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "awsclient:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("loading config: %w", err)
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("retrieving credentials: %w", err)
	}
	region, err := imds.NewFromConfig(cfg).GetRegion(ctx, &imds.GetRegionInput{})
	if err != nil {
		return fmt.Errorf("reading region from instance metadata: %w", err)
	}
	return json.NewEncoder(os.Stdout).Encode(result{
		AccessKeyID: creds.AccessKeyID,
		Source:      creds.Source,
		Expires:     creds.Expires.UTC().Format(time.RFC3339),
		Region:      region.Region,
	})
}
