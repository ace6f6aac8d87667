package collector

import (
	"path/filepath"
	"testing"
)

// TestSelinuxModes reads the configured and current modes as
// opencontainers/selinux does, and reports SELinux off without a
// selinuxfs.
func TestSelinuxModes(t *testing.T) {
	for _, tc := range []struct {
		name, config, enforce string
		wantConfig, wantMode  int
	}{
		{"enforcing", "# comment\nSELINUX=enforcing\nSELINUXTYPE=targeted\n", "1", 1, 1},
		{"permissive, quoted", `SELINUX="permissive"` + "\n", "0", 0, 0},
		{"disabled", "SELINUX=disabled\n", "0", -1, 0},
		{"no SELINUX line", "; nothing\n", "1", -1, 1},
		{"malformed enforce", "SELINUX=enforcing\n", "yes", 1, -1},
		{"missing files", "", "", -1, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			fs := map[string]string{}
			if tc.config != "" {
				fs["config"] = tc.config
			}
			if tc.enforce != "" {
				fs["selinuxfs/enforce"] = tc.enforce
			}
			files(t, root, fs)
			c := &selinuxCollector{configFile: filepath.Join(root, "config"), mount: filepath.Join(root, "selinuxfs")}
			if got := c.configMode(); got != tc.wantConfig {
				t.Errorf("configMode() = %d, want %d", got, tc.wantConfig)
			}
			if got := c.enforceMode(); got != tc.wantMode {
				t.Errorf("enforceMode() = %d, want %d", got, tc.wantMode)
			}
		})
	}
	// A directory that is no selinuxfs: SELinux is off.
	c := &selinuxCollector{sysMount: t.TempDir(), filesystems: filepath.Join(t.TempDir(), "absent")}
	if m := c.findMount(); m != "" {
		t.Errorf("findMount() = %q without a selinuxfs", m)
	}
}
