package filepos

import (
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFingerprintIsFNV1a(t *testing.T) {
	for _, content := range []string{"", "a", "2026-11-22T04:00:00Z stdout F hello\n", strings.Repeat("x", FingerprintBytes+10)} {
		path := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		n, got, err := fingerprint(f, FingerprintBytes)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		head := content[:min(len(content), FingerprintBytes)]
		h := fnv.New64a()
		h.Write([]byte(head))
		if n != len(head) || got != h.Sum64() {
			t.Errorf("%.20q: fingerprint (%d, %x), want (%d, %x)", content, n, got, len(head), h.Sum64())
		}
	}
}
