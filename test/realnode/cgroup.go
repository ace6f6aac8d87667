package realnode

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/types"
)

// Usage is what the kubelet's cgroups (v1, cgroupfs driver) say a pod or
// a container uses, the way the kubelet and `kubectl top` count it.
type Usage struct {
	// WorkingSet is memory usage less inactive file pages (cAdvisor's
	// container_memory_working_set_bytes, what eviction and OOM decisions
	// are made on).
	WorkingSet int64
	// Anon is the anonymous memory (memory.stat's total_rss: heap and
	// stacks) and ActiveFile the page cache counted in the working set;
	// the working set less both is kernel memory (slab: dentries, inodes,
	// inotify marks).
	Anon, ActiveFile int64
	// CPUNanos is the CPU time used since the cgroup was made.
	CPUNanos int64
}

// PodUsage reads a pod's cgroup; container, when not empty, is a
// container's ID (without the runtime prefix) and its own cgroup is read.
func PodUsage(uid types.UID, container string) (Usage, error) {
	var u Usage
	rel, err := podCgroup(uid)
	if err != nil {
		return u, err
	}
	if container != "" {
		rel = filepath.Join(rel, container)
	}
	mem := filepath.Join(cgroupRoot, "memory", rel)
	usage, err := readInt(filepath.Join(mem, "memory.usage_in_bytes"))
	if err != nil {
		return u, err
	}
	// One read of memory.stat: the three figures come from one moment.
	stat, err := statFields(filepath.Join(mem, "memory.stat"), "total_inactive_file", "total_rss", "total_active_file")
	if err != nil {
		return u, err
	}
	u.WorkingSet = max(usage-stat["total_inactive_file"], 0)
	u.Anon, u.ActiveFile = stat["total_rss"], stat["total_active_file"]
	if u.CPUNanos, err = readInt(filepath.Join(cgroupRoot, "cpuacct", rel, "cpuacct.usage")); err != nil {
		return u, err
	}
	return u, nil
}

// podCgroup finds kubepods[/<qos>]/pod<uid> under the memory hierarchy.
func podCgroup(uid types.UID) (string, error) {
	for _, qos := range []string{"", "burstable", "besteffort"} {
		rel := filepath.Join("kubepods", qos, "pod"+string(uid))
		if _, err := os.Stat(filepath.Join(cgroupRoot, "memory", rel)); err == nil {
			return rel, nil
		}
	}
	return "", fmt.Errorf("no cgroup for pod %s under %s/memory/kubepods", uid, cgroupRoot)
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// statFields reads the values of keys from a memory.stat file.
func statFields(path string, keys ...string) (map[string]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := make(map[string]int64, len(keys))
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || !slices.Contains(keys, key) {
			continue
		}
		if out[key], err = strconv.ParseInt(v, 10, 64); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, key, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, key := range keys {
		if _, ok := out[key]; !ok {
			return nil, fmt.Errorf("%s has no %s", path, key)
		}
	}
	return out, nil
}

// ContainerPids lists the processes of a pod's container, from its cgroup.
func ContainerPids(uid types.UID, container string) ([]int, error) {
	rel, err := podCgroup(uid)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(cgroupRoot, "pids", rel, container, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
