package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const (
	// MetadataIP is the EC2 instance metadata address, bound on the node
	// namespace's loopback so an IMDS emulator can listen on it.
	MetadataIP = "169.254.169.254"
	// PodGateway is the next hop of every pod's default route, answered by
	// proxy ARP on the node's cali interface, as in Calico.
	PodGateway = "169.254.1.1"
	// NodeUplink is the dummy interface holding the node IP; it stands for
	// the node's primary interface (so `--host-interface=!eth0` behaves as on
	// a node) but leads nowhere.
	NodeUplink = "eth0"
	// PodInterface is the pod end of each veth pair.
	PodInterface = "eth0"
)

// caliMAC is the fixed MAC Calico gives every host-side veth.
var caliMAC = net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}

// Config describes a sandbox. The zero value is ready to use. Addresses come
// from the CGNAT range, which the node namespace keeps off every real network
// anyway since it has no link to the root namespace.
type Config struct {
	// NodeIP is the node's own address (default 100.64.0.1), on NodeUplink.
	NodeIP netip.Addr
	// PodCIDR is where pod IPs come from (default 100.96.0.0/16): pod N
	// gets the Nth address after the prefix's base, N counting from 1.
	PodCIDR netip.Prefix
	// Pods is how many pods New creates; add more with AddPod.
	Pods int
	// StateDir holds the lock files used to detect stale sandboxes
	// (default DefaultStateDir).
	StateDir string
}

func (c *Config) setDefaults() error {
	if !c.NodeIP.IsValid() {
		c.NodeIP = netip.MustParseAddr("100.64.0.1")
	}
	if !c.PodCIDR.IsValid() {
		c.PodCIDR = netip.MustParsePrefix("100.96.0.0/16")
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	switch {
	case !c.NodeIP.Is4():
		return fmt.Errorf("node IP %s: only IPv4 is supported", c.NodeIP)
	case !c.PodCIDR.Addr().Is4():
		return fmt.Errorf("pod CIDR %s: only IPv4 is supported", c.PodCIDR)
	case c.PodCIDR.Bits() > 30:
		return fmt.Errorf("pod CIDR %s: too small", c.PodCIDR)
	case c.PodCIDR.Contains(c.NodeIP):
		return fmt.Errorf("pod CIDR %s contains the node IP %s", c.PodCIDR, c.NodeIP)
	case c.Pods < 0:
		return fmt.Errorf("negative pod count %d", c.Pods)
	}
	c.PodCIDR = c.PodCIDR.Masked()
	return nil
}

// Sandbox is a node namespace and its pods. Create it with New (or Start in
// tests) and remove it with Close. Its methods are safe for concurrent use.
type Sandbox struct {
	id     string
	cfg    Config
	logger *slog.Logger
	dir    string
	lock   *os.File
	node   *Node

	// life is held shared while a pod is added or deleted and exclusively
	// by Close, so Close never pulls the node out from under them.
	life sync.RWMutex

	mu     sync.Mutex
	pods   []*Pod
	last   int // index of the last pod created; indexes are never reused
	closed bool
}

// Node is the node's network namespace.
type Node struct {
	*Namespace
	ip netip.Addr
}

// IP is the node's own address (what HOST_IP would be on a real node).
func (n *Node) IP() netip.Addr { return n.ip }

// Pod is one pod's network namespace.
type Pod struct {
	*Namespace
	sb       *Sandbox
	index    int
	ip       netip.Addr
	hostVeth string
}

// IP is the pod's address, to put in status.podIP.
func (p *Pod) IP() netip.Addr { return p.ip }

// Index is the pod's number in its sandbox, starting at 1.
func (p *Pod) Index() int { return p.index }

// HostVeth is the node-side end of the pod's veth pair, caliN.
func (p *Pod) HostVeth() string { return p.hostVeth }

// New creates a sandbox: it first removes stale sandboxes of dead processes
// (see CleanStale), then the node namespace and cfg.Pods pods. On error
// everything created so far is removed. logger may be nil.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Sandbox, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("sandbox config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("creating network namespaces needs root (running as uid %d)", os.Geteuid())
	}
	if err := CleanStale(ctx, cfg.StateDir, logger); err != nil {
		// Leftovers do not clash with a new sandbox (its names are unique),
		// so this is worth a warning, not a failure.
		logger.Warn("removing stale sandboxes", "err", err)
	}

	var idb [4]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return nil, fmt.Errorf("generating sandbox id: %w", err)
	}
	sb := &Sandbox{cfg: cfg, id: hex.EncodeToString(idb[:])}
	sb.logger = logger.With("sandbox", sb.id)

	dir, err := os.MkdirTemp("", "nk-"+sb.id+"-")
	if err != nil {
		return nil, fmt.Errorf("creating sandbox temp dir: %w", err)
	}
	sb.dir = dir
	// The locked state file exists before any namespace, so no concurrent
	// CleanStale can mistake this sandbox for a dead one.
	sb.lock, err = lockState(cfg.StateDir, state{ID: sb.id, PID: os.Getpid(), Dir: dir, Created: time.Now().UTC()})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := sb.setupNode(ctx); err != nil {
		return nil, errors.Join(err, sb.Close())
	}
	for range cfg.Pods {
		if _, err := sb.AddPod(ctx); err != nil {
			return nil, errors.Join(err, sb.Close())
		}
	}
	sb.logger.Debug("sandbox ready", "node", sb.node.Name(), "nodeIP", cfg.NodeIP, "pods", cfg.Pods)
	return sb, nil
}

// ID is the sandbox's random id, part of every namespace name.
func (sb *Sandbox) ID() string { return sb.id }

// Node returns the node namespace.
func (sb *Sandbox) Node() *Node { return sb.node }

// Dir is a temporary directory removed by Close, for files the test puts on
// the "node" (container logs, kubeconfigs, state dirs).
func (sb *Sandbox) Dir() string { return sb.dir }

// Pods returns the live pods in the order they were added.
func (sb *Sandbox) Pods() []*Pod {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return slices.Clone(sb.pods)
}

func (sb *Sandbox) setupNode(ctx context.Context) error {
	ns, err := openNamespace(ctx, "nk-"+sb.id+"-node")
	sb.node = &Node{Namespace: ns, ip: sb.cfg.NodeIP}
	if err != nil {
		return err
	}
	h := ns.nl
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("finding lo in node namespace: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bringing up lo in node namespace: %w", err)
	}
	if err := h.AddrAdd(lo, hostAddr(netip.MustParseAddr(MetadataIP))); err != nil {
		return fmt.Errorf("adding %s to lo in node namespace: %w", MetadataIP, err)
	}

	uplink, err := addBlackhole(h, NodeUplink)
	if err != nil {
		return fmt.Errorf("creating %s in node namespace: %w", NodeUplink, err)
	}
	if err := h.AddrAdd(uplink, hostAddr(sb.cfg.NodeIP)); err != nil {
		return fmt.Errorf("adding node IP %s to %s: %w", sb.cfg.NodeIP, NodeUplink, err)
	}
	if err := h.LinkSetUp(uplink); err != nil {
		return fmt.Errorf("bringing up %s in node namespace: %w", NodeUplink, err)
	}
	// Proxy ARP only answers for an address the node routes out of another
	// interface. A Calico node has a default route; this one must not, so
	// route just the gateway address into the dummy, where it goes nowhere.
	gw := &netlink.Route{
		LinkIndex: uplink.Attrs().Index,
		Dst:       hostNet(netip.MustParseAddr(PodGateway)),
		Scope:     netlink.SCOPE_LINK,
	}
	if err := h.RouteAdd(gw); err != nil {
		return fmt.Errorf("routing %s to %s in node namespace: %w", PodGateway, NodeUplink, err)
	}
	return ns.Do(func() error { return writeSysctl("net/ipv4/ip_forward", "1") })
}

// AddPod creates a pod namespace wired to the node with the next index and IP.
func (sb *Sandbox) AddPod(ctx context.Context) (*Pod, error) {
	sb.life.RLock()
	defer sb.life.RUnlock()
	sb.mu.Lock()
	if sb.closed {
		sb.mu.Unlock()
		return nil, fmt.Errorf("adding a pod to sandbox %s: sandbox closed", sb.id)
	}
	sb.last++
	index := sb.last
	sb.mu.Unlock()

	ip, err := nthAddr(sb.cfg.PodCIDR, index)
	if err != nil {
		return nil, err
	}
	p := &Pod{sb: sb, index: index, ip: ip, hostVeth: "cali" + strconv.Itoa(index)}
	ns, err := openNamespace(ctx, "nk-"+sb.id+"-pod"+strconv.Itoa(index))
	p.Namespace = ns
	if err == nil {
		err = p.wire()
	}
	if err != nil {
		return nil, errors.Join(err, p.remove(ctx))
	}

	sb.mu.Lock()
	defer sb.mu.Unlock()
	sb.pods = append(sb.pods, p)
	sb.logger.Debug("pod added", "pod", p.Name(), "ip", ip, "veth", p.hostVeth)
	return p, nil
}

// wire connects the pod to the node the way Calico's CNI plugin does.
func (p *Pod) wire() error {
	node := p.sb.node
	nh, ph := node.nl, p.nl
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: p.hostVeth, HardwareAddr: caliMAC},
		PeerName:      PodInterface,
		PeerNamespace: netlink.NsFd(p.handle),
	}
	// Created inside the node namespace with the peer placed straight into
	// the pod: neither end ever exists in the root namespace.
	if err := nh.LinkAdd(veth); err != nil {
		return fmt.Errorf("creating veth %s in node namespace: %w", p.hostVeth, err)
	}
	err := node.Do(func() error {
		return errors.Join(
			writeSysctl("net/ipv4/conf/"+p.hostVeth+"/proxy_arp", "1"),
			// Without this the kernel delays proxy ARP replies by up to 0.8s.
			writeSysctl("net/ipv4/neigh/"+p.hostVeth+"/proxy_delay", "0"),
			writeSysctl("net/ipv4/conf/"+p.hostVeth+"/forwarding", "1"),
		)
	})
	if err != nil {
		return fmt.Errorf("configuring %s in node namespace: %w", p.hostVeth, err)
	}
	if err := nh.LinkSetUp(veth); err != nil {
		return fmt.Errorf("bringing up %s in node namespace: %w", p.hostVeth, err)
	}

	if err := p.Do(func() error { return writeSysctl("net/ipv4/ip_forward", "0") }); err != nil {
		return fmt.Errorf("configuring pod namespace %s: %w", p.name, err)
	}
	lo, err := ph.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("finding lo in %s: %w", p.name, err)
	}
	if err := ph.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bringing up lo in %s: %w", p.name, err)
	}
	eth, err := ph.LinkByName(PodInterface)
	if err != nil {
		return fmt.Errorf("finding %s in %s: %w", PodInterface, p.name, err)
	}
	if err := ph.AddrAdd(eth, hostAddr(p.ip)); err != nil {
		return fmt.Errorf("adding pod IP %s in %s: %w", p.ip, p.name, err)
	}
	if err := ph.LinkSetUp(eth); err != nil {
		return fmt.Errorf("bringing up %s in %s: %w", PodInterface, p.name, err)
	}
	gw := netip.MustParseAddr(PodGateway)
	routes := []*netlink.Route{
		{LinkIndex: eth.Attrs().Index, Dst: hostNet(gw), Scope: netlink.SCOPE_LINK},
		{LinkIndex: eth.Attrs().Index, Gw: gw.AsSlice()},
	}
	for _, r := range routes {
		if err := ph.RouteAdd(r); err != nil {
			return fmt.Errorf("adding route %s in %s: %w", r, p.name, err)
		}
	}
	toPod := &netlink.Route{LinkIndex: veth.Attrs().Index, Dst: hostNet(p.ip), Scope: netlink.SCOPE_LINK}
	if err := nh.RouteAdd(toPod); err != nil {
		return fmt.Errorf("routing pod IP %s via %s in node namespace: %w", p.ip, p.hostVeth, err)
	}
	return nil
}

// Delete removes the pod: its processes, namespace and veth pair. The pod's
// index and IP are not reused by this sandbox.
func (p *Pod) Delete(ctx context.Context) error {
	sb := p.sb
	sb.life.RLock()
	defer sb.life.RUnlock()
	sb.mu.Lock()
	i := slices.Index(sb.pods, p)
	if i < 0 {
		sb.mu.Unlock()
		return nil
	}
	sb.pods = slices.Delete(sb.pods, i, i+1)
	sb.mu.Unlock()
	return p.remove(ctx)
}

func (p *Pod) remove(ctx context.Context) error {
	var errs []error
	// Delete the host end explicitly: a socket still open in the pod would
	// keep the namespace, and so the veth, alive after `ip netns delete`.
	if nh := p.sb.node.nl; nh != nil {
		if l, err := nh.LinkByName(p.hostVeth); err == nil {
			if err := nh.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("deleting %s in node namespace: %w", p.hostVeth, err))
			}
		} else if !errors.As(err, new(netlink.LinkNotFoundError)) {
			errs = append(errs, fmt.Errorf("finding %s in node namespace: %w", p.hostVeth, err))
		}
	}
	if p.Namespace != nil {
		errs = append(errs, p.destroy(ctx))
	}
	return errors.Join(errs...)
}

// Close removes the pods, the node, the temp dir and the state file, killing
// every process still running in the namespaces. It is idempotent. Sockets
// this process still holds in a namespace keep that (now nameless)
// namespace alive until they are closed; the veths are removed regardless.
func (sb *Sandbox) Close() error {
	sb.life.Lock()
	defer sb.life.Unlock()
	sb.mu.Lock()
	if sb.closed {
		sb.mu.Unlock()
		return nil
	}
	sb.closed = true
	pods := sb.pods
	sb.pods = nil
	sb.mu.Unlock()

	// Cleanup must run even when the caller's context is already cancelled
	// (a test's context ends before its Cleanup funcs run).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	for _, p := range pods {
		errs = append(errs, p.remove(ctx))
	}
	if sb.node != nil && sb.node.Namespace != nil {
		errs = append(errs, sb.node.destroy(ctx))
	}
	if err := os.RemoveAll(sb.dir); err != nil {
		errs = append(errs, fmt.Errorf("removing sandbox temp dir: %w", err))
	}
	if sb.lock != nil {
		// Remove before unlocking: a state file must never be seen unlocked
		// while its namespaces may still exist.
		if err := os.Remove(statePath(sb.cfg.StateDir, sb.id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing sandbox state file: %w", err))
		}
		errs = append(errs, sb.lock.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("closing sandbox %s: %w", sb.id, err)
	}
	return nil
}

// addBlackhole creates an interface that silently drops what is sent to it:
// a dummy, or an ifb (which drops packets not redirected to it by tc) on
// kernels built without the dummy driver, such as some microVM kernels.
func addBlackhole(h *netlink.Handle, name string) (netlink.Link, error) {
	dummy := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name}}
	err := h.LinkAdd(dummy)
	if err == nil {
		return dummy, nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) {
		return nil, fmt.Errorf("adding dummy link: %w", err)
	}
	ifb := &netlink.Ifb{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if ierr := h.LinkAdd(ifb); ierr != nil {
		return nil, fmt.Errorf("adding dummy link: %w; adding ifb link instead: %w", err, ierr)
	}
	return ifb, nil
}

// nthAddr returns the address n after the prefix's base, if inside it and not
// its broadcast address.
func nthAddr(p netip.Prefix, n int) (netip.Addr, error) {
	a := p.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	size := uint64(1) << (32 - p.Bits())
	if n <= 0 || uint64(n) >= size-1 {
		return netip.Addr{}, fmt.Errorf("pod %d does not fit in pod CIDR %s", n, p)
	}
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), nil
}

func hostNet(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}
}

func hostAddr(a netip.Addr) *netlink.Addr { return &netlink.Addr{IPNet: hostNet(a)} }
