package agent

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is stamped at link time (-X github.com/nodekit/nodekit/pkg/agent.version=...);
// builds without it report the module version or "dev".
var version = ""

// Version reports this build's version.
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// VersionLine is what --version prints.
func VersionLine(name string) string {
	return fmt.Sprintf("%s %s (%s, %s/%s)", name, Version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
