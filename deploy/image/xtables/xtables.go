// Package xtables chooses the iptables backend (nft or legacy) the node
// uses, for the image's iptables-wrapper: the same arrangement as
// kubernetes-sigs/iptables-wrappers, which the release base image
// (distroless-iptables) carries and which cannot be fetched here.
//
// The image holds both backends (xtables-nft-multi, xtables-legacy-multi)
// and points iptables, iptables-save, iptables-restore and their ip6tables
// twins at the wrapper. On each call the wrapper detects the node's backend
// from the chains the kubelet creates (KUBE-IPTABLES-HINT or
// KUBE-KUBELET-CANARY in the mangle table), then repoints those six links to
// the chosen multi-call binary so later calls skip it. Under a read-only
// root filesystem (nodekit.yaml's containers) the links cannot change, and
// every call detects again and runs the chosen binary directly.
package xtables

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Mode is an iptables backend.
type Mode string

const (
	NFT    Mode = "nft"
	Legacy Mode = "legacy"
)

// Multi is the multi-call binary implementing mode's commands.
func (m Mode) Multi() string { return "xtables-" + string(m) + "-multi" }

// Commands are the names the wrapper stands in for.
var Commands = []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"}

// IsCommand reports whether name is one of Commands.
func IsCommand(name string) bool {
	for _, c := range Commands {
		if c == name {
			return true
		}
	}
	return false
}

// Runner runs one command of a multi-call binary (multi is Mode.Multi(),
// command e.g. "iptables-save") and returns its standard output.
type Runner func(ctx context.Context, multi, command string, args ...string) ([]byte, error)

// kubeletChains are created by every kubelet since Kubernetes 1.17, in the
// backend the node uses.
var kubeletChains = []string{":KUBE-IPTABLES-HINT ", ":KUBE-KUBELET-CANARY "}

// Detect returns the backend the node uses. Errors from the save commands
// are not fatal: a backend the kernel lacks simply shows no rules.
//
// Order, as the release image's wrapper: the kubelet's chains in nft's
// mangle table (cheap to ask for one table); then anywhere in legacy (asking
// legacy for one table would create it); then whichever backend holds more
// rules, nft on a tie (nothing installed yet).
func Detect(ctx context.Context, run Runner) Mode {
	save := func(m Mode, args ...string) []byte {
		var out []byte
		for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
			b, _ := run(ctx, m.Multi(), cmd, args...)
			out = append(out, b...)
		}
		return out
	}
	if hasKubeletChain(save(NFT, "-t", "mangle")) {
		return NFT
	}
	legacy := save(Legacy)
	if hasKubeletChain(legacy) {
		return Legacy
	}
	if countRules(legacy) > countRules(save(NFT)) {
		return Legacy
	}
	return NFT
}

func hasKubeletChain(save []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(save))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text() + " "
		for _, c := range kubeletChains {
			if strings.HasPrefix(line, c) {
				return true
			}
		}
	}
	return false
}

// countRules counts rule lines (-A ...) in iptables-save output.
func countRules(save []byte) int {
	n := 0
	for line := range bytes.SplitSeq(save, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("-")) {
			n++
		}
	}
	return n
}

// Relink points each of Commands in sbin at mode's multi-call binary,
// replacing each link atomically. It stops at the first failure: on a
// read-only root filesystem that is the first link (EROFS).
func Relink(sbin string, mode Mode) error {
	target := filepath.Join(sbin, mode.Multi())
	for _, c := range Commands {
		link := filepath.Join(sbin, c)
		tmp := link + ".wrapper-tmp"
		_ = os.Remove(tmp)
		if err := os.Symlink(target, tmp); err != nil {
			return fmt.Errorf("linking %s to %s: %w", link, target, err)
		}
		if err := os.Rename(tmp, link); err != nil {
			_ = os.Remove(tmp)
			return fmt.Errorf("linking %s to %s: %w", link, target, err)
		}
	}
	return nil
}

// ReadOnly reports whether err says the filesystem is read-only, the
// expected case in nodekit's containers.
func ReadOnly(err error) bool { return errors.Is(err, syscall.EROFS) }
