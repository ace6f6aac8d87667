//go:build !linux

package image

import "os"

const sandboxEnv = "NODEKIT_IMAGE_TEST_SANDBOX"

// sandboxMain: the read-only sandbox needs Linux namespaces.
func sandboxMain(string) { os.Exit(126) }
