//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"

	"github.com/nodekit/nodekit/test/awsemu"
)

// TestREADMECommands keeps the README's shell examples true to the code:
// every flag a nodekit command is shown with exists in that command's
// --help, the `logship query` examples run against the emulator, every make
// target exists, and every file kubectl is pointed at is in the repository.
// The demo's own instructions are run for real by TestDemoInstructions.
func TestREADMECommands(t *testing.T) {
	root := mpRepoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	binDir := os.Getenv("NODEKIT_BIN")
	if binDir == "" {
		t.Fatal("NODEKIT_BIN is not set: run through `make e2e`, which builds bin/")
	}

	helps := map[string]string{}
	help := func(args ...string) string {
		key := strings.Join(args, " ")
		if h, ok := helps[key]; ok {
			return h
		}
		out, _ := exec.Command(filepath.Join(binDir, args[0]), append(args[1:], "--help")...).CombinedOutput()
		helps[key] = string(out)
		return helps[key]
	}

	checked := map[string]int{}
	var queries [][]string // logship query examples to run against the emulator
	for _, line := range readmeShellLines(string(readme)) {
		words := readmeCommand(shellWords(line))
		if len(words) == 0 {
			continue
		}
		switch prog := filepath.Base(words[0]); prog {
		case "metaproxy", "logship", "nodeexp":
			cmd := []string{prog}
			rest := words[1:]
			if len(rest) > 0 && (rest[0] == "query" || rest[0] == "uninstall") {
				cmd, rest = append(cmd, rest[0]), rest[1:]
			}
			text := help(cmd...)
			if !strings.Contains(text, "-") {
				t.Errorf("%s --help printed nothing useful: %q", strings.Join(cmd, " "), text)
				continue
			}
			for _, w := range rest {
				if !strings.HasPrefix(w, "-") || w == "-" {
					continue
				}
				name, _, _ := strings.Cut(strings.TrimLeft(w, "-"), "=")
				if !regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(name) + `(\s|$)`).MatchString(text) {
					t.Errorf("README: `%s` uses %s, which `%s --help` does not list", line, w, strings.Join(cmd, " "))
				}
			}
			if len(cmd) == 2 && cmd[1] == "query" && !slices.Contains(rest, "-f") && !slices.Contains(rest, "--follow") {
				queries = append(queries, rest)
			}
			checked[prog]++
		case "make":
			for _, target := range words[1:] {
				if strings.HasPrefix(target, "-") || strings.Contains(target, "=") {
					continue
				}
				if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `:`).Match(makefile) {
					t.Errorf("README: `%s`: the Makefile has no target %q", line, target)
				}
			}
			checked[prog]++
		case "kubectl":
			for i, w := range words {
				var path string
				switch {
				case w == "-f" && i+1 < len(words):
					path = words[i+1]
				case strings.HasPrefix(w, "--from-file="):
					path = strings.TrimPrefix(w, "--from-file=")
				}
				if path != "" {
					if _, err := os.Stat(filepath.Join(root, path)); err != nil {
						t.Errorf("README: `%s` names %s: %v", line, path, err)
					}
				}
			}
			checked[prog]++
		}
	}
	readmeRunQueries(t, filepath.Join(binDir, "logship"), queries)

	// The README shows each of these; if extraction broke, say so rather
	// than pass having checked nothing.
	for _, prog := range []string{"logship", "metaproxy", "make", "kubectl"} {
		if checked[prog] == 0 {
			t.Errorf("no %s command found in the README's sh blocks (checked: %v)", prog, checked)
		}
	}
}

// readmeRunQueries runs the README's `logship query` examples (all but
// --follow, which never ends) against the emulator, where the group of the
// examples' cluster exists but holds nothing: each must run and exit 0.
func readmeRunQueries(t *testing.T, bin string, queries [][]string) {
	t.Helper()
	if len(queries) == 0 {
		t.Error("no runnable logship query example found in the README")
		return
	}
	_, url := awsemu.StartServer(t, awsemu.Options{})
	env := append(os.Environ(),
		"AWS_ENDPOINT_URL_CLOUDWATCH_LOGS="+url, "AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=AKIAEXAMPLEEXAMPLE01", "AWS_SECRET_ACCESS_KEY=secret", "AWS_EC2_METADATA_DISABLED=true")
	logs := cloudwatchlogs.New(cloudwatchlogs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  awscreds.NewStaticCredentialsProvider("AKIAEXAMPLEEXAMPLE01", "secret", ""),
	})
	for _, q := range queries {
		cluster := "prod"
		for i, w := range q {
			if w == "--cluster" && i+1 < len(q) {
				cluster = q[i+1]
			}
		}
		group := "/aws/containerinsights/" + cluster + "/application"
		if _, err := logs.CreateLogGroup(t.Context(), &cloudwatchlogs.CreateLogGroupInput{LogGroupName: &group}); err != nil && !strings.Contains(err.Error(), "ResourceAlreadyExists") {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(t.Context(), bin, append([]string{"query"}, q...)...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("README example `logship query %s` failed: %v\n%s", strings.Join(q, " "), err, out)
		}
	}
}

// readmeShellLines returns the command lines of the ```sh blocks, with
// backslash continuations joined.
func readmeShellLines(md string) []string {
	var lines []string
	in := false
	var cont string
	for _, l := range strings.Split(md, "\n") {
		fence := strings.TrimLeft(l, " ")
		switch {
		case strings.HasPrefix(fence, "```sh"):
			in = true
			continue
		case strings.HasPrefix(fence, "```"):
			in = false
			continue
		case !in:
			continue
		}
		l = strings.TrimSpace(l)
		if strings.HasSuffix(l, "\\") {
			cont += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		if l = cont + l; l != "" {
			lines = append(lines, l)
		}
		cont = ""
	}
	return lines
}

// shellWords splits a line the way sh would for these examples: quotes
// group, a # at the start of a word begins a comment, ; and | end the
// command (the rest is not examined).
func shellWords(line string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case (r == '#' && !inWord) || r == ';' || r == '|':
			if inWord {
				words = append(words, cur.String())
			}
			return words
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// readmeCommand drops what runs the command somewhere (ip netns exec NS,
// env -i, VAR=value assignments) and returns the command itself.
func readmeCommand(words []string) []string {
	for len(words) > 0 {
		switch {
		case len(words) >= 4 && words[0] == "ip" && words[1] == "netns" && words[2] == "exec":
			words = words[4:]
		case words[0] == "env" || words[0] == "-i" || (strings.Contains(words[0], "=") && !strings.HasPrefix(words[0], "-")):
			words = words[1:]
		default:
			return words
		}
	}
	return nil
}
