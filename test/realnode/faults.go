package realnode

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The faults a node meets in production, made here for the fault tests:
// a network partition between the agents and the API server, an AWS
// endpoint that refuses connections or lets them hang, a node that loses
// power, a full disk. Each is undone by the function it returns, and by
// Close in any case (the namespaces go, hostState unmounts).

// PartitionAgents cuts the agents (and every other in-cluster client on
// the node, which all reach the API server through the kubernetes
// Service's ClusterIP) off from the API server: the node drops their
// packets, established connections included, as a broken network would.
// The kubelet and kube-proxy, which dial the API server's own address, keep
// working: pods still start, but nodekit does not hear of them.
func (n *Node) PartitionAgents(ctx context.Context) (heal func(context.Context) error, err error) {
	rule := []string{"OUTPUT", "-m", "conntrack", "--ctorigdst", ServiceIP.String(), "--ctorigdstport", "443",
		"-p", "tcp", "-m", "comment", "--comment", "nodekit fault test: API partition", "-j", "DROP"}
	if err := n.iptables(ctx, n.NodeNS.Path(), append([]string{"-I"}, rule...)...); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		return n.iptables(ctx, n.NodeNS.Path(), append([]string{"-D"}, rule...)...)
	}, nil
}

// PortFault is how a service port fails.
type PortFault string

const (
	// Refuse answers connections with a reset.
	Refuse PortFault = "refuse"
	// Hang drops packets: connections time out.
	Hang PortFault = "hang"
)

// BreakPort makes connections to the emulator's port (STSPort or LogsPort)
// fail as f says, until the returned function is called. Requests on
// connections already open fail too.
func (n *Node) BreakPort(ctx context.Context, port int, f PortFault) (restore func(context.Context) error, err error) {
	rule := []string{"INPUT", "-p", "tcp", "--dport", strconv.Itoa(port), "-m", "comment", "--comment", "nodekit fault test"}
	switch f {
	case Refuse:
		rule = append(rule, "-j", "REJECT", "--reject-with", "tcp-reset")
	case Hang:
		rule = append(rule, "-j", "DROP")
	default:
		return nil, fmt.Errorf("unknown port fault %q", f)
	}
	if err := n.iptables(ctx, n.EC2NS.Path(), append([]string{"-I"}, rule...)...); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		return n.iptables(ctx, n.EC2NS.Path(), append([]string{"-D"}, rule...)...)
	}, nil
}

func (n *Node) iptables(ctx context.Context, netns string, args ...string) error {
	out, err := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + netns, "iptables", "-w"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %v: %w: %s", args, err, out)
	}
	return nil
}

// Crash is a power loss of the node: the kubelet, containerd, every shim and
// every container (the agents among them) die by SIGKILL at once. The
// state directories stay, as a disk does; Boot brings the node back on them.
func (n *Node) Crash(ctx context.Context) error {
	killed := killCgroups()
	killed = append(killed, killShims()...)
	for _, name := range []string{"kubelet", "containerd"} {
		if err := n.daemons[name].stop(syscall.SIGKILL, 0); err != nil {
			return err
		}
		delete(n.daemons, name)
	}
	// Processes in the node's namespace outside the kubepods cgroups
	// (none is expected) would survive a real power loss no better.
	return waitGone(killed, 30*time.Second)
}

// Boot starts containerd and the kubelet again after Crash and waits for
// the node to be Ready; the kubelet then restarts the pods it finds.
func (n *Node) Boot(ctx context.Context) error {
	d, err := n.startDaemon("containerd", n.bin.containerdd(), "--config", n.path("etc", "containerd.toml"))
	if err != nil {
		return err
	}
	n.daemons["containerd"] = d
	if err := n.waitFor(ctx, "containerd's socket", time.Minute, func(ctx context.Context) (bool, error) {
		_, err := n.Ctr(ctx, "version")
		return err == nil, err
	}); err != nil {
		return err
	}
	return n.startKubelet(ctx)
}

// CheckpointTmpfs mounts a tmpfs of size bytes where the manifest's logship
// checkpoints live (/var/lib/nodekit/logship), before nodekit is
// installed, so a test can fill the disk under logship. Close unmounts it.
func (n *Node) CheckpointTmpfs(size int64) (string, error) {
	const dir = "/var/lib/nodekit/logship"
	// Recorded before the mount, so a killed run's successor unmounts it.
	n.state.Mounts = append(n.state.Mounts, dir)
	if err := saveState(n.path(stateFile), n.state); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size="+strconv.FormatInt(size, 10)+",mode=0755"); err != nil {
		return "", fmt.Errorf("mounting a %d-byte tmpfs on %s: %w", size, dir, err)
	}
	return dir, nil
}
