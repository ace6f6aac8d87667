// Package agent is the frame shared by nodekit's three node agents: the
// common command-line flags, structured logging, the operations HTTP server
// (/healthz, /readyz, /metrics, optional pprof) with its readiness conditions
// (see Condition), and Exec, which turns signals into context cancellation
// and errors into exit codes.
//
// Lifecycle contract used throughout nodekit: constructors validate and start
// nothing; Run(ctx) blocks until ctx ends, cleans up, and returns.
package agent
