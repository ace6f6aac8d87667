package kubeapi

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

const (
	dirPrefix = "nodekit-kubeapi-"
	ownerFile = "owner.pid"
)

// claimDir records this process as the directory's owner, so a later Start
// can tell the directory of a killed run (its children died with it through
// Pdeathsig) from one in use.
func claimDir(dir string) error {
	return os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o600)
}

// removeStaleDirs removes the directories of runs whose owner is gone, as a
// SIGKILLed test binary leaves them. Directories without an owner file are
// left alone: they may be a run that is just starting.
func removeStaleDirs() error {
	matches, err := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	if err != nil {
		return err
	}
	var errs []error
	for _, dir := range matches {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		errs = append(errs, os.RemoveAll(dir))
	}
	return errors.Join(errs...)
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
