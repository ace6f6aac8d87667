//go:build !linux

package main

import (
	"context"
	"errors"
	"io"
)

// runShipper is the shipper, which reads the kubelet's log files on Linux nodes;
// elsewhere only `logship query` works.
func runShipper(context.Context, []string, io.Writer) error {
	return errors.New("the shipper runs on Linux nodes only; on this system use `logship query` (logship query --help)")
}
