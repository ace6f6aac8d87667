// Command logship ships the node's container logs to CloudWatch Logs, with
// Kubernetes metadata in fluent-bit's record shape.
//
// Usage:
//
//	logship [flags]          ship (see --help)
//	logship query [flags] [POD]   read shipped logs back, like kubectl logs (see logship query --help)
package main

import (
	"context"
	"io"
	"os"

	"github.com/nodekit/nodekit/pkg/agent"
	"github.com/nodekit/nodekit/pkg/logship/query"
)

func main() { os.Exit(agent.Exec("logship", run, os.Args[1:], os.Stdout, os.Stderr)) }

// run is `logship query` wherever SREs run it (Linux, macOS, Windows), and
// the shipper itself on Linux nodes (see ship_linux.go).
func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "query" {
		return query.Run(ctx, args[1:], stdout, os.Stderr)
	}
	return runShipper(ctx, args, stdout)
}
