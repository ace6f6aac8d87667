package fixturetree

import (
	"os"
	"path/filepath"
	"testing"
)

func TestTTARContent(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain\n"},
		{"no newlineEOF", "no newline"},
		{"NULLBYTEa", "\x00a\n"},
		{"aNULLBYTENULLBYTEb", "a\x00\x00b\n"},
		{`kept \NULLBYTE and \EOF`, "kept NULLBYTE and EOF\n"},
		{"NULLBYTEEOF", "\x00"},
		{"EOF", "EOF\n"}, // as ttar does: an EOF needs a character before it
		{"", "\n"},
	} {
		if got := string(ttarContent([]byte(tc.in))); got != tc.want {
			t.Errorf("ttarContent(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestExtractTTAR(t *testing.T) {
	dir := t.TempDir()
	archive := filepath.Join(dir, "a.ttar")
	if err := os.WriteFile(archive, []byte(`# Archive created by ttar
Directory: sys
Mode: 755
# ttar - - -
Path: sys/one
Lines: 2
first
secondEOF
Mode: 444
# ttar - - -
Path: sys/empty
Lines: 0
Mode: 644
# ttar - - -
Path: sys/link
SymlinkTo: one
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := ExtractTTAR(archive, out); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"sys/one": "first\nsecond", "sys/empty": "", "sys/link": "first\nsecond"} {
		b, err := os.ReadFile(filepath.Join(out, path))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", path, b, err, want)
		}
	}
	if st, err := os.Lstat(filepath.Join(out, "sys/one")); err != nil || st.Mode().Perm() != 0o444 {
		t.Errorf("sys/one mode %v, %v; want 0444", st.Mode(), err)
	}
	for name, bad := range map[string]string{
		"escaping path":  "Path: ../x\nLines: 0\n",
		"unknown key":    "Size: 3\n",
		"truncated file": "Path: x\nLines: 2\nonly one\n",
	} {
		if err := os.WriteFile(archive, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := ExtractTTAR(archive, t.TempDir()); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
