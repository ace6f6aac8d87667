package realnode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// HostClean reports what a real node left on the machine: its namespaces,
// processes of its daemons, mounts below Dir, kubepods cgroups, Dir itself,
// the kubelet's and libcni's host files. Tests call it after Close and
// after cleaning up a killed run; the sysctls and the root mount's
// propagation are compared by the caller against what it saw before.
func HostClean() error {
	var errs []error
	for _, ns := range []string{NodeNamespace, EC2Namespace} {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
			errs = append(errs, fmt.Errorf("network namespace %s is left", ns))
		}
	}
	if mps, err := mountsBelow(Dir); err != nil || len(mps) > 0 {
		errs = append(errs, fmt.Errorf("mounts below %s are left: %v %v", Dir, mps, err))
	}
	if dirs := kubepodsDirs(); len(dirs) > 0 {
		errs = append(errs, fmt.Errorf("kubepods cgroups are left: %v", dirs))
	}
	if _, err := os.Stat(Dir); err == nil {
		errs = append(errs, fmt.Errorf("%s is left", Dir))
	}
	for _, p := range []string{"/var/lib/kubelet/device-plugins/kubelet.sock", "/var/lib/cni/results", "/var/log/pods", "/var/lib/nodekit"} {
		if _, err := os.Stat(p); err == nil {
			errs = append(errs, fmt.Errorf("%s is left", p))
		}
	}
	if entries, _ := os.ReadDir("/var/log/containers"); len(entries) > 0 {
		errs = append(errs, fmt.Errorf("/var/log/containers holds %d entries", len(entries)))
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		if strings.Contains(string(cmdline), Dir+"/") {
			errs = append(errs, fmt.Errorf("process %s is left: %s", p.Name(), strings.ReplaceAll(string(cmdline), "\x00", " ")))
		}
	}
	return errors.Join(errs...)
}

// HostSnapshot is the host state a node changes and must put back, for
// tests to compare before and after.
func HostSnapshot() (string, error) {
	st, err := recordHost()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, key := range hostSysctls {
		fmt.Fprintf(&b, "%s=%s\n", key, st.Sysctls[key])
	}
	fmt.Fprintf(&b, "root mount private=%v\n", st.RootWasPrivate)
	for _, p := range st.Paths {
		fmt.Fprintf(&b, "%s existed=%v entries=%v\n", p.Path, p.Existed, p.Entries)
	}
	return b.String(), nil
}
