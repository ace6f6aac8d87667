package fixturetree

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ExtractTTAR unpacks a ttar archive (the text archive procfs and
// node_exporter keep their sysfs fixtures in, since sysfs trees hold
// symlinks and files without trailing newlines) under dir.
//
// The format: entries separated by "# ..." comment lines; "Directory: p"
// and "Path: p" start an entry, "Lines: n" is followed by n content lines,
// "SymlinkTo: t" makes p a symlink, "Mode: m" sets its octal mode. In
// content lines NULLBYTE stands for a zero byte and a trailing EOF for a
// last line without newline; a backslash keeps either literal.
func ExtractTTAR(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var path string // the current entry, under dir
	var content *os.File
	lines, lineNo := 0, 0
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%s:%d: %s", archive, lineNo, fmt.Sprintf(format, a...))
	}
	for sc.Scan() {
		lineNo++
		line := sc.Bytes()
		if lines > 0 {
			if _, err := content.Write(ttarContent(line)); err != nil {
				return err
			}
			if lines--; lines == 0 {
				if err := content.Close(); err != nil {
					return err
				}
			}
			continue
		}
		key, val, _ := strings.Cut(string(line), ": ")
		switch {
		case strings.HasPrefix(string(line), "#"):
		case key == "Directory":
			if path, err = ttarPath(dir, val); err != nil {
				return fail("%v", err)
			}
			if err := os.MkdirAll(path, 0o755); err != nil {
				return err
			}
		case key == "Path":
			if path, err = ttarPath(dir, val); err != nil {
				return fail("%v", err)
			}
		case key == "Lines":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 || path == "" {
				return fail("bad Lines %q", val)
			}
			if content, err = os.Create(path); err != nil {
				return err
			}
			if lines = n; n == 0 {
				if err := content.Close(); err != nil {
					return err
				}
			}
		case key == "SymlinkTo":
			if path == "" {
				return fail("SymlinkTo without Path")
			}
			if err := os.Symlink(val, path); err != nil {
				return err
			}
		case key == "Mode":
			m, err := strconv.ParseUint(val, 8, 32)
			if err != nil || path == "" {
				return fail("bad Mode %q", val)
			}
			if err := os.Chmod(path, os.FileMode(m)); err != nil {
				return err
			}
		default:
			return fail("unknown line %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if lines > 0 {
		content.Close()
		return fail("archive ends %d lines into %s", lines, path)
	}
	return nil
}

// ttarPath joins an entry's path to dir, refusing paths that leave it.
func ttarPath(dir, p string) (string, error) {
	if !filepath.IsLocal(p) {
		return "", fmt.Errorf("entry %q leaves the archive's directory", p)
	}
	return filepath.Join(dir, p), nil
}

// ttarContent decodes one content line: NULLBYTE is a zero byte, an EOF
// not at the start of the line ends the file there without a newline, and
// a backslash before either keeps it literally.
func ttarContent(line []byte) []byte {
	out := make([]byte, 0, len(line)+1)
	newline := true
	for i := 0; i < len(line); {
		switch rest := line[i:]; {
		case bytes.HasPrefix(rest, []byte(`\NULLBYTE`)):
			out, i = append(out, "NULLBYTE"...), i+9
		case bytes.HasPrefix(rest, []byte(`\EOF`)):
			out, i = append(out, "EOF"...), i+4
		case bytes.HasPrefix(rest, []byte("NULLBYTE")):
			out, i = append(out, 0), i+8
		case bytes.HasPrefix(rest, []byte("EOF")) && i > 0:
			newline, i = false, i+3
		default:
			out, i = append(out, line[i]), i+1
		}
	}
	if newline {
		out = append(out, '\n')
	}
	return out
}
