package realnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodekit/nodekit/pkg/agent"
	"github.com/nodekit/nodekit/test/awsemu"
	"github.com/nodekit/nodekit/test/kubeapi"
	"github.com/nodekit/nodekit/test/sandbox"
)

const (
	// NodeName is the Kubernetes node's name.
	NodeName = "realnode"
	// NodeNamespace and EC2Namespace are the network namespaces' names.
	NodeNamespace = "nkrn-node"
	EC2Namespace  = "nkrn-ec2"
	// Dir holds everything of the node's own: binaries built per run,
	// configuration, PKI, containerd's and the kubelet's state, daemon
	// logs, and the record of the host state it changed.
	Dir = "/tmp/nodekit-realnode"
	// Bridge is the CNI bridge, where pods' traffic enters the node (as
	// iptables -i sees it, br_netfilter reporting the bridge, not the port).
	Bridge = "cni0"
	// PodCIDR is where the bridge plugin takes pod IPs from by default
	// (Config.PodRange narrows it).
	PodCIDR = "10.244.0.0/24"
	// STSPort and LogsPort are where the emulator serves STS and
	// CloudWatch Logs, on UplinkIP: two ports, so that a test can make one
	// service unreachable and keep the other (Fault).
	STSPort  = 4566
	LogsPort = 4567

	lockPath  = "/run/nodekit-realnode.lock"
	stateFile = "host-state.json"
	kubelet   = "system:node:" + NodeName
)

var (
	// NodeIP is the node's address, on its eth0.
	NodeIP = netip.MustParseAddr("10.99.0.2")
	// UplinkIP is the far end of the node's eth0, in the EC2 namespace: the
	// node's default gateway and the emulator's AWS endpoint.
	UplinkIP = netip.MustParseAddr("10.99.0.1")
	// ServiceIP is the kubernetes Service's ClusterIP (kube-proxy DNATs it
	// to the API server).
	ServiceIP = netip.MustParseAddr("10.96.0.1")
)

// Config shapes the node. The zero value is ready to use.
type Config struct {
	// ContainerLogMaxSize, ContainerLogMaxFiles and
	// ContainerLogMonitorInterval are the kubelet's log rotation settings
	// (defaults 1Mi, 3 and 10s; the interval may not be under 3s).
	ContainerLogMaxSize         string
	ContainerLogMaxFiles        int
	ContainerLogMonitorInterval time.Duration
	// MinimumContainerTTL keeps a finished container, and its log files,
	// at least this long after it was created (the kubelet's
	// --minimum-container-ttl-duration; default 0: the next garbage
	// collection, within a minute of a pod's deletion, removes them).
	MinimumContainerTTL time.Duration
	// PodIPs is how many addresses of PodCIDR the bridge plugin hands out,
	// from 10.244.0.2 up (default: all of them). Few make it reuse pod IPs
	// soon, as a busy node's plugin does.
	PodIPs int
	// LockWait is how long New waits for another node on the machine to go
	// (default 20m; negative: not at all).
	LockWait time.Duration
	// AWS configures the emulator.
	AWS awsemu.Options
	// Logger receives the harness's own log; nil discards it. The daemons
	// log to files under Dir/logs.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.ContainerLogMaxSize == "" {
		c.ContainerLogMaxSize = "1Mi"
	}
	if c.ContainerLogMaxFiles == 0 {
		c.ContainerLogMaxFiles = 3
	}
	if c.ContainerLogMonitorInterval == 0 {
		c.ContainerLogMonitorInterval = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.PodIPs > 250 {
		c.PodIPs = 0
	}
	if c.LockWait == 0 {
		c.LockWait = 20 * time.Minute
	}
}

// Node is a running real node. Close tears it down.
type Node struct {
	// NodeNS is the node's network namespace; EC2NS the one behind its
	// uplink, where the emulator answers.
	NodeNS, EC2NS *sandbox.Namespace
	// Kube is the API server (etcd and kube-apiserver in NodeNS).
	Kube *kubeapi.Server
	// AWS is the emulator: IMDS at 169.254.169.254:80, STS at STSEndpoint
	// and CloudWatch Logs at LogsEndpoint.
	AWS *awsemu.Emulator

	cfg     Config
	logger  *slog.Logger
	dir     string
	bin     binaries
	lock    *os.File
	state   *hostState
	daemons map[string]*daemon

	serveCancel context.CancelFunc
	serveWG     sync.WaitGroup
	serveMu     sync.Mutex
	serveErrs   []error

	closeOnce sync.Once
	closeErr  error
}

// New brings the node up: about 10 s once the binaries are cached. On error
// everything already started is removed.
func New(ctx context.Context, cfg Config) (_ *Node, err error) {
	cfg.setDefaults()
	if cfg.ContainerLogMonitorInterval < 3*time.Second {
		return nil, fmt.Errorf("container log monitor interval %v: the kubelet requires at least 3s", cfg.ContainerLogMonitorInterval)
	}
	n := &Node{cfg: cfg, logger: cfg.Logger, dir: Dir, daemons: map[string]*daemon{}}
	if n.lock, err = lockNode(ctx, cfg.LockWait, n.logger); err != nil {
		return nil, err
	}
	if err := cleanStale(ctx, n.logger); err != nil {
		n.lock.Close()
		return nil, fmt.Errorf("cleaning up after an earlier real node: %w", err)
	}
	if n.bin, err = findBinaries(ctx); err != nil {
		n.lock.Close()
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, n.Close())
		}
	}()
	for _, d := range []string{"bin", "logs", "etc", "cni/net.d", "kubelet", "containerd"} {
		if err := os.MkdirAll(n.path(d), 0o755); err != nil {
			return nil, fmt.Errorf("creating %s: %w", n.path(d), err)
		}
	}
	// The record comes before any change it lists.
	if n.state, err = recordHost(); err != nil {
		return nil, err
	}
	if err := saveState(n.path(stateFile), n.state); err != nil {
		return nil, err
	}
	start := time.Now()
	if err := n.setupNetwork(ctx); err != nil {
		return nil, err
	}
	if err := n.startAWS(ctx); err != nil {
		return nil, err
	}
	if n.Kube, err = kubeapi.Start(ctx, kubeapi.Config{
		Netns:            n.NodeNS,
		AdvertiseAddress: NodeIP.String(),
		Logger:           n.logger.With("component", "kubeapi"),
		Cluster: &kubeapi.Cluster{
			ServiceIP: net.IP(ServiceIP.AsSlice()),
			Users:     map[string][]string{kubelet: {"system:nodes"}},
		},
	}); err != nil {
		return nil, fmt.Errorf("starting the API server: %w", err)
	}
	if err := n.writeConfigs(); err != nil {
		return nil, err
	}
	if err := n.startContainerd(ctx); err != nil {
		return nil, err
	}
	if err := n.startKubernetes(ctx); err != nil {
		return nil, err
	}
	n.logger.Info("real node up", "node", NodeName, "ip", NodeIP, "took", time.Since(start).Round(time.Millisecond))
	return n, nil
}

// Start is New for a test: it fails the test on error and closes the node
// in the test's cleanup.
func Start(tb testing.TB, cfg Config) *Node {
	tb.Helper()
	sandbox.RequireRoot(tb)
	n, err := New(tb.Context(), cfg)
	if err != nil {
		tb.Fatalf("starting the real node: %v", err)
	}
	tb.Cleanup(func() {
		if err := n.Close(); err != nil {
			tb.Errorf("closing the real node: %v", err)
		}
	})
	return n
}

func (n *Node) path(elem ...string) string { return filepath.Join(append([]string{n.dir}, elem...)...) }

func (n *Node) containerdSock() string { return n.path("containerd", "containerd.sock") }

// AdminKubeconfig is a kubeconfig with cluster-admin rights, for kubectl
// run inside NodeNS (Kubectl does that).
func (n *Node) AdminKubeconfig() string { return n.Kube.Kubeconfig() }

// STSEndpoint and LogsEndpoint are the emulator's endpoint URLs, reachable
// from the node and its pods.
func (n *Node) STSEndpoint() string {
	return "http://" + net.JoinHostPort(UplinkIP.String(), strconv.Itoa(STSPort))
}

func (n *Node) LogsEndpoint() string {
	return "http://" + net.JoinHostPort(UplinkIP.String(), strconv.Itoa(LogsPort))
}

// LogDir is where a daemon's log is (name: containerd, kubelet,
// kube-controller-manager, kube-scheduler, kube-proxy).
func (n *Node) LogDir() string { return n.path("logs") }

// lockNode takes the machine-wide real-node lock: one node at a time, since
// the kubelet's device-plugin socket and the host paths are shared. It
// waits up to wait for another node to go (test binaries of several
// packages may run at once), logging that it waits.
func lockNode(ctx context.Context, wait time.Duration, logger *slog.Logger) (*os.File, error) {
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", lockPath, err)
	}
	deadline := time.Now().Add(wait)
	logged := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", lockPath, err)
		}
		st, _ := loadState(filepath.Join(Dir, stateFile))
		pid := 0
		if st != nil {
			pid = st.PID
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			f.Close()
			return nil, fmt.Errorf("another real node is running on this machine (pid %d holds %s); one node at a time", pid, lockPath)
		}
		if !logged {
			logger.Info("waiting for another real node on this machine to go", "pid", pid)
			logged = true
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// cleanStale removes what a node whose process died left behind, and puts
// back the host state it recorded. Hold the lock.
func cleanStale(ctx context.Context, logger *slog.Logger) error {
	st, err := loadState(filepath.Join(Dir, stateFile))
	if err != nil {
		return err
	}
	_, dirErr := os.Stat(Dir)
	if st == nil && errors.Is(dirErr, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Join("/run/netns", NodeNamespace)); errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
	logger.Info("cleaning up a real node left by a killed run", "pid", func() int {
		if st == nil {
			return 0
		}
		return st.PID
	}())
	if err := sweep(ctx, logger); err != nil {
		return err
	}
	if st != nil {
		if err := st.restore(); err != nil {
			return err
		}
	}
	return removeAllUnmounted(Dir)
}

// setupNetwork makes the two namespaces and the link between them.
func (n *Node) setupNetwork(ctx context.Context) (err error) {
	if n.NodeNS, err = sandbox.OpenNamespace(ctx, NodeNamespace); err != nil {
		return err
	}
	if n.EC2NS, err = sandbox.OpenNamespace(ctx, EC2Namespace); err != nil {
		return err
	}
	ec2Handle, err := netns.GetFromName(EC2Namespace)
	if err != nil {
		return fmt.Errorf("opening namespace %s: %w", EC2Namespace, err)
	}
	defer ec2Handle.Close()
	nodeNL, ec2NL := n.NodeNS.Netlink(), n.EC2NS.Netlink()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "uplink", PeerNamespace: netlink.NsFd(int(ec2Handle))}
	if err := nodeNL.LinkAdd(veth); err != nil {
		return fmt.Errorf("creating the node's eth0: %w", err)
	}
	type step struct {
		h      *netlink.Handle
		link   string
		addr   string
		routes [][2]string // destination, gateway
	}
	for _, s := range []step{
		{nodeNL, "lo", "", nil},
		{nodeNL, "eth0", NodeIP.String() + "/24", [][2]string{{"0.0.0.0/0", UplinkIP.String()}}},
		{ec2NL, "lo", sandbox.MetadataIP + "/32", nil},
		{ec2NL, "uplink", UplinkIP.String() + "/24", [][2]string{{"10.244.0.0/16", NodeIP.String()}}},
	} {
		link, err := s.h.LinkByName(s.link)
		if err != nil {
			return fmt.Errorf("finding %s: %w", s.link, err)
		}
		if s.addr != "" {
			a, err := netlink.ParseAddr(s.addr)
			if err != nil {
				return err
			}
			if err := s.h.AddrAdd(link, a); err != nil {
				return fmt.Errorf("adding %s to %s: %w", s.addr, s.link, err)
			}
		}
		if err := s.h.LinkSetUp(link); err != nil {
			return fmt.Errorf("bringing %s up: %w", s.link, err)
		}
		for _, r := range s.routes {
			_, dst, err := net.ParseCIDR(r[0])
			if err != nil {
				return err
			}
			route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Gw: net.ParseIP(r[1])}
			if err := s.h.RouteAdd(route); err != nil {
				return fmt.Errorf("adding route %s via %s: %w", r[0], r[1], err)
			}
		}
	}
	return nil
}

// startAWS serves the emulator in the EC2 namespace.
func (n *Node) startAWS(ctx context.Context) error {
	n.AWS = awsemu.New(n.cfg.AWS)
	serveCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.serveCancel = cancel
	// The metadata address serves only IMDS, as on EC2: nothing reaching it
	// finds STS or the emulator's admin API there.
	for addr, h := range map[string]http.Handler{
		net.JoinHostPort(sandbox.MetadataIP, "80"):                  n.AWS.IMDSHandler(),
		net.JoinHostPort(UplinkIP.String(), strconv.Itoa(STSPort)):  n.AWS,
		net.JoinHostPort(UplinkIP.String(), strconv.Itoa(LogsPort)): n.AWS,
	} {
		ln, err := n.EC2NS.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listening for the AWS emulator on %s: %w", addr, err)
		}
		n.serveWG.Go(func() {
			if err := agent.ServeHTTP(serveCtx, ln, h, 2*time.Second); err != nil {
				n.serveMu.Lock()
				n.serveErrs = append(n.serveErrs, err)
				n.serveMu.Unlock()
			}
		})
	}
	return nil
}

// podRange is the host-local range for Config.PodIPs, or nil for all.
func (n *Node) podRange() any {
	if n.cfg.PodIPs <= 0 {
		return nil
	}
	base := netip.MustParsePrefix(PodCIDR).Addr().Next() // .1 is the bridge
	start, end := base.Next(), base
	for range n.cfg.PodIPs {
		end = end.Next()
	}
	return struct{ Start, End string }{start.String(), end.String()}
}

func (n *Node) writeConfigs() error {
	if _, err := n.Kube.WriteKubeconfig(n.path("etc", "kubelet.kubeconfig"), kubelet, n.Kube.Token(kubelet)); err != nil {
		return err
	}
	// Pods must not get the machine's resolver, which is off the machine.
	if err := os.WriteFile(n.path("etc", "resolv.conf"), []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		return err
	}
	data := map[string]any{
		"Dir":                n.dir,
		"PauseImage":         PauseImage,
		"Bridge":             Bridge,
		"PodCIDR":            PodCIDR,
		"PodRange":           n.podRange(),
		"NodeIP":             NodeIP.String(),
		"NodeName":           NodeName,
		"CAFile":             n.Kube.CAFile(),
		"Kubeconfig":         n.AdminKubeconfig(),
		"LogMaxSize":         n.cfg.ContainerLogMaxSize,
		"LogMaxFiles":        n.cfg.ContainerLogMaxFiles,
		"LogMonitorInterval": n.cfg.ContainerLogMonitorInterval.String(),
	}
	for path, t := range map[string]*template.Template{
		n.path("etc", "containerd.toml"):              containerdConfig,
		n.path("cni", "net.d", "10-nodekit.conflist"): cniConfig,
		n.path("etc", "kubelet.yaml"):                 kubeletConfig,
		n.path("etc", "kube-proxy.yaml"):              proxyConfig,
	} {
		if err := writeTemplate(path, t, data); err != nil {
			return err
		}
	}
	return nil
}

// startContainerd starts containerd and imports the pause and busybox
// images. The host's / becomes a shared mount first: containerd refuses a
// HostToContainer mount of / (nodeexp's) from a private one ("path "/" is
// mounted on "/" but it is not a shared or slave mount"), and systemd
// hosts have it shared anyway. hostState restores it.
func (n *Node) startContainerd(ctx context.Context) error {
	if n.state.RootWasPrivate {
		if err := unix.Mount("", "/", "", unix.MS_SHARED, ""); err != nil {
			return fmt.Errorf("making / a shared mount: %w", err)
		}
	}
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
	pauseBin, err := buildPause(ctx, n.path("bin"))
	if err != nil {
		return err
	}
	pause, err := NewImage([]File{{Path: "/pause", Source: pauseBin}}, nil, []string{"/pause"})
	if err != nil {
		return fmt.Errorf("making the pause image: %w", err)
	}
	if err := n.ImportImage(ctx, PauseImage, pause); err != nil {
		return err
	}
	busybox, err := NewBusyboxImage(ctx)
	if err != nil {
		return fmt.Errorf("making the busybox image: %w", err)
	}
	return n.ImportImage(ctx, BusyboxImage, busybox)
}

// startKubernetes starts the controllers, kube-proxy and the kubelet, and
// waits for the node to be Ready with a default service account to use.
// The kubelet starts after the node's other daemons: it is the one Boot
// starts again.
func (n *Node) startKubernetes(ctx context.Context) error {
	admin := n.AdminKubeconfig()
	for _, d := range []struct {
		name, bin string
		args      []string
	}{
		{"kube-controller-manager", n.bin.controllerManager(), []string{
			"--kubeconfig=" + admin,
			"--service-account-private-key-file=" + n.Kube.ServiceAccountKeyFile(),
			"--root-ca-file=" + n.Kube.CAFile(),
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
			"--controllers=*",
			// Else it creates /usr/libexec/kubernetes/kubelet-plugins.
			"--flex-volume-plugin-dir=" + n.path("kubelet", "kcm-flex"),
			"--node-monitor-grace-period=20s",
		}},
		{"kube-scheduler", n.bin.scheduler(), []string{
			"--kubeconfig=" + admin,
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
		}},
		{"kube-proxy", n.bin.proxy(), []string{
			"--config=" + n.path("etc", "kube-proxy.yaml"),
		}},
	} {
		dm, err := n.startDaemon(d.name, d.bin, d.args...)
		if err != nil {
			return err
		}
		n.daemons[d.name] = dm
	}
	if err := n.startKubelet(ctx); err != nil {
		return err
	}
	return n.waitFor(ctx, "the default service account", time.Minute, func(ctx context.Context) (bool, error) {
		_, err := n.Kube.Client().CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
}

// startKubelet starts the kubelet and waits for it to report the node
// Ready (a status from before a crash does not count).
func (n *Node) startKubelet(ctx context.Context) error {
	since := time.Now().Truncate(time.Second)
	d, err := n.startDaemon("kubelet", n.bin.kubelet(),
		"--config="+n.path("etc", "kubelet.yaml"),
		"--kubeconfig="+n.path("etc", "kubelet.kubeconfig"),
		"--root-dir="+n.path("kubelet"),
		"--cert-dir="+n.path("kubelet", "pki"),
		"--hostname-override="+NodeName,
		"--node-ip="+NodeIP.String(),
		"--minimum-container-ttl-duration="+n.cfg.MinimumContainerTTL.String(),
		"--v=1",
	)
	if err != nil {
		return err
	}
	n.daemons["kubelet"] = d
	client := n.Kube.Client()
	return n.waitFor(ctx, "node "+NodeName+" Ready", 2*time.Minute, func(ctx context.Context) (bool, error) {
		node, err := client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				fresh := !c.LastHeartbeatTime.Time.Before(since)
				return fresh && c.Status == corev1.ConditionTrue, fmt.Errorf("%w: %s (heartbeat %v)", errNotReady, c.Message, c.LastHeartbeatTime)
			}
		}
		return false, errNotReady
	})
}

// Kubectl runs kubectl with admin rights inside the node namespace and
// returns its combined output.
func (n *Node) Kubectl(ctx context.Context, args ...string) (string, error) {
	out, err := n.KubectlCommand(ctx, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %v: %w: %s", args, err, out)
	}
	return string(out), nil
}

// KubectlPath is the kubectl binary the node's version came with.
func (n *Node) KubectlPath() string { return n.bin.kubectl() }

// KubectlCommand is the command Kubectl runs, to wire up as needed.
func (n *Node) KubectlCommand(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{"--net=" + n.NodeNS.Path(), n.bin.kubectl(), "--kubeconfig=" + n.AdminKubeconfig()}, args...)
	return exec.CommandContext(ctx, "nsenter", full...)
}

// Close stops everything, removes what the node made and puts back the host
// state it changed. Daemons are killed, not drained: nothing of the node
// outlives it.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		for _, name := range []string{"kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager", "containerd"} {
			errs = append(errs, n.daemons[name].stop(syscall.SIGKILL, 0))
		}
		if n.Kube != nil {
			errs = append(errs, n.Kube.Close())
		}
		if n.serveCancel != nil {
			n.serveCancel()
			n.serveWG.Wait()
		}
		n.serveMu.Lock()
		errs = append(errs, n.serveErrs...)
		n.serveMu.Unlock()
		if n.NodeNS != nil {
			errs = append(errs, n.NodeNS.Close(context.Background()))
		}
		if n.EC2NS != nil {
			errs = append(errs, n.EC2NS.Close(context.Background()))
		}
		err := sweep(context.Background(), n.logger)
		if err == nil && n.state != nil {
			err = n.state.restore()
		}
		// The record stays for the next run to retry unless all went back.
		if err == nil {
			err = removeAllUnmounted(n.dir)
		}
		errs = append(errs, err)
		if n.lock != nil {
			n.lock.Close()
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}
