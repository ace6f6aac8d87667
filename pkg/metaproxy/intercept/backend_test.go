package intercept

import (
	"os"
	"path/filepath"
	"testing"
)

func TestBackendCommand(t *testing.T) {
	for _, tt := range []struct {
		name, version string
		present       []string
		want          string
	}{
		{"wrapper on an nft node", "iptables v1.8.9 (nf_tables)", []string{"iptables-nft", "iptables-legacy"}, "iptables-nft"},
		{"wrapper on a legacy node", "iptables v1.8.9 (legacy)", []string{"iptables-nft", "iptables-legacy"}, "iptables-legacy"},
		{"no backend command", "iptables v1.8.9 (nf_tables)", nil, "iptables"},
		{"an old iptables without a mode", "iptables v1.6.1", []string{"iptables-legacy"}, "iptables"},
		{"iptables fails", "", []string{"iptables-nft"}, "iptables"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			script := "#!/bin/sh\necho '" + tt.version + "'\n"
			if tt.version == "" {
				script = "#!/bin/sh\nexit 3\n"
			}
			if err := os.WriteFile(filepath.Join(dir, "iptables"), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			for _, p := range tt.present {
				if err := os.WriteFile(filepath.Join(dir, p), []byte("#!/bin/sh\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("PATH", dir)
			if got := BackendCommand(t.Context(), "iptables"); got != tt.want {
				t.Errorf("BackendCommand = %q, want %q", got, tt.want)
			}
		})
	}
}
