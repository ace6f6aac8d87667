package realnode

import (
	"bufio"
	"fmt"
	"strings"
)

// installMarker precedes README.md's install block.
const installMarker = "<!-- realnode-install"

// Install is README.md's "Install from a local image" block: what a
// platform team runs, and what InstallNodekit runs.
type Install struct {
	// ImageRef is `make image IMAGE_REF=...`'s reference.
	ImageRef string
	// Archive is the path `ctr images import` loads.
	Archive string
	// Kustomization is the my-cluster/kustomization.yaml the block writes.
	Kustomization string
	// Apply and Rollout are the kubectl commands' arguments.
	Apply, Rollout []string
}

// ParseInstall reads the install block from README.md's text. Every step
// must be there, once; anything else in the block is an error, so the
// README cannot grow a step the test does not run.
func ParseInstall(readme string) (Install, error) {
	var in Install
	_, after, ok := strings.Cut(readme, installMarker)
	if !ok {
		return in, fmt.Errorf("README has no %q block", installMarker)
	}
	_, after, ok = strings.Cut(after, "```sh\n")
	if !ok {
		return in, fmt.Errorf("the install block has no ```sh fence")
	}
	block, _, ok := strings.Cut(after, "```")
	if !ok {
		return in, fmt.Errorf("the install block is not closed")
	}
	sc := bufio.NewScanner(strings.NewReader(block))
	var heredoc *strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if heredoc != nil {
			if line == "EOF" {
				in.Kustomization = heredoc.String()
				heredoc = nil
				continue
			}
			heredoc.WriteString(line + "\n")
			continue
		}
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		words := strings.Fields(line)
		switch {
		case len(words) == 0:
		case len(words) == 3 && words[0] == "make" && words[1] == "image" && strings.HasPrefix(words[2], "IMAGE_REF="):
			in.ImageRef = strings.TrimPrefix(words[2], "IMAGE_REF=")
		case len(words) == 6 && strings.Join(words[:5], " ") == "ctr -n k8s.io images import":
			in.Archive = words[5]
		case strings.HasPrefix(line, "mkdir -p "+UserOverlay+" && cat > "+UserOverlay+"/kustomization.yaml <<'EOF'"):
			heredoc = &strings.Builder{}
		case words[0] == "kubectl" && len(words) > 1 && words[1] == "apply":
			in.Apply = words[1:]
		case words[0] == "kubectl" && strings.Contains(line, " rollout status "):
			in.Rollout = words[1:]
		default:
			return in, fmt.Errorf("the install block has a step the real-node test does not know: %q", line)
		}
	}
	switch {
	case heredoc != nil:
		return in, fmt.Errorf("the install block's kustomization has no closing EOF")
	case in.ImageRef == "", in.Archive == "", in.Kustomization == "", in.Apply == nil, in.Rollout == nil:
		return in, fmt.Errorf("the install block lacks a step: %+v", in)
	}
	return in, nil
}
