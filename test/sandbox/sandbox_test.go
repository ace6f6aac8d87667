package sandbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// serveWhoAmI serves HTTP on l, answering each request with the client's IP,
// until the test ends.
func serveWhoAmI(t *testing.T, l net.Listener) {
	t.Helper()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			fmt.Fprint(w, host)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
}

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	return string(b)
}

func TestPodsReachNode(t *testing.T) {
	sb := Start(t, Config{Pods: 2})
	node := sb.Node()
	for _, addr := range []string{MetadataIP + ":80", node.IP().String() + ":8181"} {
		l, err := node.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		serveWhoAmI(t, l)
	}
	for _, p := range sb.Pods() {
		for _, url := range []string{"http://" + MetadataIP + "/", "http://" + node.IP().String() + ":8181/"} {
			t.Run(p.Name()+"/"+url, func(t *testing.T) {
				// The server sees the pod's own IP: routed, not NATed.
				if got := get(t, p.HTTPClient(), url); got != p.IP().String() {
					t.Errorf("server saw client %q, want the pod IP %s", got, p.IP())
				}
			})
		}
	}

	t.Run("command in pod", func(t *testing.T) {
		p := sb.Pods()[0]
		script := `exec 3<>/dev/tcp/` + MetadataIP + `/80; printf 'GET / HTTP/1.0\r\n\r\n' >&3; cat <&3`
		out, err := p.Command(t.Context(), "bash", "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("bash in pod: %v: %s", err, out)
		}
		if !strings.HasSuffix(string(out), "\r\n\r\n"+p.IP().String()) {
			t.Errorf("bash in pod got %q, want a response ending in the pod IP %s", out, p.IP())
		}
	})
}

func TestForwardingOnlyOnNode(t *testing.T) {
	sb := Start(t, Config{Pods: 1})
	tests := []struct {
		name string
		ns   *Namespace
		want string
	}{
		{"node", sb.Node().Namespace, "1"},
		{"pod", sb.Pods()[0].Namespace, "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.ns.Command(t.Context(), "cat", "/proc/sys/net/ipv4/ip_forward").CombinedOutput()
			if err != nil {
				t.Fatalf("cat in %s: %v: %s", tt.ns.Name(), err, out)
			}
			if got := strings.TrimSpace(string(out)); got != tt.want {
				t.Errorf("ip_forward in %s = %q, want %q", tt.ns.Name(), got, tt.want)
			}
		})
	}
}

func TestPodToPodOnlyViaNode(t *testing.T) {
	sb := Start(t, Config{Pods: 2})
	p1, p2 := sb.Pods()[0], sb.Pods()[1]
	l, err := p2.Listen("tcp", p2.IP().String()+":8080")
	if err != nil {
		t.Fatal(err)
	}
	serveWhoAmI(t, l)
	url := "http://" + p2.IP().String() + ":8080/"

	if got := get(t, p1.HTTPClient(), url); got != p1.IP().String() {
		t.Fatalf("pod2 saw client %q, want pod1's IP %s", got, p1.IP())
	}

	// A pod has no link but lo and eth0, and its path to another pod is its
	// default route through the node.
	links, err := p1.Netlink().LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	slices.Sort(names)
	if want := []string{PodInterface, "lo"}; !slices.Equal(names, want) {
		t.Errorf("pod links = %v, want %v", names, want)
	}
	routes, err := p1.Netlink().RouteGet(p2.IP().AsSlice())
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 1 || routes[0].Gw.String() != PodGateway {
		t.Errorf("pod1's route to pod2 = %v, want via %s", routes, PodGateway)
	}

	// A datagram from pod1 arrives at pod2 with its TTL lowered by one: it
	// crossed exactly one router, the node.
	if got := receivedTTL(t, p1, p2); got != 63 {
		t.Errorf("pod2 received TTL %d, want 63 (64 minus the node's hop)", got)
	}
}

// receivedTTL sends one UDP datagram with TTL 64 from one pod to another and
// returns the TTL it arrived with.
func receivedTTL(t *testing.T, from, to *Pod) int {
	t.Helper()
	pc, err := to.ListenPacket("udp4", to.IP().String()+":9999")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	uc := pc.(*net.UDPConn)
	raw, err := uc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVTTL, 1) }); err != nil || serr != nil {
		t.Fatalf("setting IP_RECVTTL: %v %v", err, serr)
	}
	c, err := from.DialContext(t.Context(), "udp4", to.IP().String()+":9999")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sraw, err := c.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := sraw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, 64) }); err != nil || serr != nil {
		t.Fatalf("setting IP_TTL: %v %v", err, serr)
	}
	if _, err := c.Write([]byte("hop?")); err != nil {
		t.Fatal(err)
	}
	// The deadline only keeps a broken sandbox from hanging the test.
	uc.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf, oob := make([]byte, 16), make([]byte, 64)
	_, oobn, _, _, err := uc.ReadMsgUDP(buf, oob)
	if err != nil {
		t.Fatalf("receiving in %s: %v", to.Name(), err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_TTL && len(m.Data) >= 4 {
			return int(binary.NativeEndian.Uint32(m.Data[:4]))
		}
	}
	t.Fatalf("no TTL in control messages %v", msgs)
	return 0
}

func TestNoRouteOut(t *testing.T) {
	sb := Start(t, Config{Pods: 1})
	node, pod := sb.Node(), sb.Pods()[0]

	routes, err := node.Netlink().RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			t.Errorf("node namespace has a default route: %v", r)
		}
	}

	// The node has lo, its dummy uplink and the pods' veths: nothing that
	// could lead to the root namespace.
	links, err := node.Netlink().LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		a := l.Attrs()
		switch {
		case a.Name == "lo", a.Name == NodeUplink && (l.Type() == "dummy" || l.Type() == "ifb"), a.Name == pod.HostVeth() && l.Type() == "veth":
		default:
			t.Errorf("unexpected link %s (%s) in node namespace", a.Name, l.Type())
		}
	}

	// 198.51.100.1 (TEST-NET-2) stands for "anything off the machine". The
	// node has no route there, so a connect fails at once, without a packet.
	off := netip.MustParseAddr("198.51.100.1")
	_, err = node.DialContext(t.Context(), "tcp", off.String()+":80")
	if !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("dial off the machine from the node: got %v, want network unreachable", err)
	}
	// A pod sends everything to the node (checked without sending: the
	// node's ICMP answers are rate limited, so timing would decide).
	routes, err = pod.Netlink().RouteGet(off.AsSlice())
	if err != nil || len(routes) != 1 || routes[0].Gw.String() != PodGateway {
		t.Errorf("pod route to %s = %v, %v; want via %s", off, routes, err, PodGateway)
	}
	if routes, err := node.Netlink().RouteGet(off.AsSlice()); !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("node route to %s = %v, %v; want network unreachable", off, routes, err)
	}
}

// rootLinks returns the names of the root namespace's links that look like
// ours: caliN veths or Calico's MAC.
func suspectRootLinks(t *testing.T) []string {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		a := l.Attrs()
		if strings.HasPrefix(a.Name, "cali") || a.HardwareAddr.String() == caliMAC.String() {
			names = append(names, a.Name)
		}
	}
	return names
}

func namespacesOf(t *testing.T, id string) []string {
	t.Helper()
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "nk-"+id+"-") {
			names = append(names, e.Name())
		}
	}
	return names
}

func TestCloseRemovesEverything(t *testing.T) {
	RequireRoot(t)
	before := suspectRootLinks(t)
	sb, err := New(t.Context(), Config{Pods: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			sb.Close()
		}
	})
	if got := namespacesOf(t, sb.ID()); len(got) != 3 {
		t.Fatalf("namespaces of sandbox %s = %v, want node and two pods", sb.ID(), got)
	}
	if got := suspectRootLinks(t); !slices.Equal(got, before) {
		t.Errorf("root namespace links changed while the sandbox is up: %v, was %v", got, before)
	}

	var cmds []*exec.Cmd
	for _, ns := range []*Namespace{sb.Node().Namespace, sb.Pods()[1].Namespace} {
		cmd := ns.Command(context.Background(), "sleep", "600")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	dir := sb.Dir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	closed = true
	if err := sb.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, cmd := range cmds {
		// Wait returns only once the process is gone.
		if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Errorf("%v: Wait = %v, want killed", cmd.Args, err)
		}
	}
	if got := namespacesOf(t, sb.ID()); len(got) != 0 {
		t.Errorf("namespaces left after Close: %v", got)
	}
	if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil || strings.Contains(string(out), sb.ID()) {
		t.Errorf("ip netns list after Close: %v: %s", err, out)
	}
	if got := suspectRootLinks(t); !slices.Equal(got, before) {
		t.Errorf("root namespace links after Close: %v, was %v", got, before)
	}
	for _, path := range []string{dir, statePath(DefaultStateDir, sb.ID())} {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after Close (stat: %v)", path, err)
		}
	}
	if err := sb.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestPodDelete(t *testing.T) {
	sb := Start(t, Config{Pods: 2})
	p1 := sb.Pods()[0]
	if err := p1.Delete(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p1.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod namespace %s still exists (stat: %v)", p1.Path(), err)
	}
	if _, err := sb.Node().Netlink().LinkByName(p1.HostVeth()); err == nil {
		t.Errorf("%s still exists in the node namespace", p1.HostVeth())
	}
	p3 := AddPod(t, sb)
	if p3.Index() != 3 || p3.IP() != netip.MustParseAddr("100.96.0.3") || p3.HostVeth() != "cali3" {
		t.Errorf("new pod = index %d ip %s veth %s, want 3 100.96.0.3 cali3", p3.Index(), p3.IP(), p3.HostVeth())
	}
	if got := len(sb.Pods()); got != 2 {
		t.Errorf("live pods = %d, want 2", got)
	}
}

func TestDo(t *testing.T) {
	sb := Start(t, Config{Pods: 1})
	pod := sb.Pods()[0]
	inNode := func() error { _, err := netlink.LinkByName(pod.HostVeth()); return err }
	if err := sb.Node().Do(inNode); err != nil {
		t.Errorf("node.Do: %s not found: %v", pod.HostVeth(), err)
	}
	if err := pod.Do(inNode); err == nil {
		t.Errorf("pod.Do: found the node's %s inside the pod", pod.HostVeth())
	}
	want := errors.New("boom")
	if err := pod.Do(func() error { return want }); !errors.Is(err, want) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	func() {
		defer func() {
			if p := recover(); p != "panic in fn" {
				t.Errorf("recovered %v, want fn's panic", p)
			}
		}()
		pod.Do(func() error { panic("panic in fn") })
	}()
}

func TestDialRejectsNames(t *testing.T) {
	sb := Start(t, Config{})
	if _, err := sb.Node().DialContext(t.Context(), "tcp", "example.com:80"); err == nil || !strings.Contains(err.Error(), "must be an IP") {
		t.Errorf("dial by name: got %v, want a refusal", err)
	}
}

func TestNthAddr(t *testing.T) {
	tests := []struct {
		prefix string
		n      int
		want   string
	}{
		{"100.96.0.0/16", 1, "100.96.0.1"},
		{"100.96.0.0/16", 256, "100.96.1.0"},
		{"100.96.0.0/16", 65534, "100.96.255.254"},
		{"100.96.0.0/16", 65535, ""},
		{"100.96.0.0/16", 0, ""},
		{"10.1.2.0/30", 2, "10.1.2.2"},
		{"10.1.2.0/30", 3, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.prefix, tt.n), func(t *testing.T) {
			got, err := nthAddr(netip.MustParsePrefix(tt.prefix), tt.n)
			if tt.want == "" {
				if err == nil {
					t.Errorf("got %s, want an error", got)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Errorf("got %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"ipv6 node", Config{NodeIP: netip.MustParseAddr("fd00::1")}},
		{"ipv6 pods", Config{PodCIDR: netip.MustParsePrefix("fd00::/64")}},
		{"node in pod range", Config{NodeIP: netip.MustParseAddr("100.96.0.1")}},
		{"tiny pod range", Config{PodCIDR: netip.MustParsePrefix("100.96.0.0/31")}},
		{"negative pods", Config{Pods: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.setDefaults(); err == nil {
				t.Errorf("config %+v accepted", tt.cfg)
			}
		})
	}
}

func TestProgramsForkedInDoRunInTheNamespace(t *testing.T) {
	sb := Start(t, Config{Pods: 1})
	pod := sb.Pods()[0]
	// Proven harmlessly first: cali1 exists only in the node namespace.
	err := sb.Node().Do(func() error {
		out, err := exec.Command("ip", "link", "show", pod.HostVeth()).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("a program started inside node.Do does not see %s, so it is not in the node namespace: %v", pod.HostVeth(), err)
	}

	const chain = "NK-SANDBOX-TEST"
	err = sb.Node().Do(func() error {
		ipt, err := iptables.New()
		if err != nil {
			return err
		}
		return ipt.NewChain("nat", chain)
	})
	if err != nil {
		t.Fatalf("creating chain %s in the node namespace: %v", chain, err)
	}
	tests := []struct {
		name string
		ns   *Namespace
		want bool
	}{
		{"node", sb.Node().Namespace, true},
		{"pod", pod.Namespace, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.ns.Command(t.Context(), "iptables", "-w", "-t", "nat", "-S").CombinedOutput()
			if err != nil {
				t.Fatalf("iptables -S in %s: %v: %s", tt.ns.Name(), err, out)
			}
			if got := strings.Contains(string(out), chain); got != tt.want {
				t.Errorf("chain %s in %s: %v, want %v:\n%s", chain, tt.ns.Name(), got, tt.want, out)
			}
		})
	}
}

// BenchmarkPodToNodeHTTP measures one HTTP request from a pod to a server in
// the node namespace over a kept-alive connection: the floor under any
// metaproxy latency measured in the sandbox.
func BenchmarkPodToNodeHTTP(b *testing.B) {
	sb := Start(b, Config{Pods: 1})
	l, err := sb.Node().Listen("tcp", MetadataIP+":80")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ReadHeaderTimeout: 5 * time.Second,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	defer func() {
		srv.Close()
		<-done
	}()
	c := sb.Pods()[0].HTTPClient()
	for b.Loop() {
		resp, err := c.Get("http://" + MetadataIP + "/")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func TestConcurrentPods(t *testing.T) {
	sb := Start(t, Config{})
	const n = 8
	var g errgroup.Group
	for range n {
		g.Go(func() error {
			_, err := sb.AddPod(t.Context())
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	l, err := sb.Node().Listen("tcp", MetadataIP+":80")
	if err != nil {
		t.Fatal(err)
	}
	serveWhoAmI(t, l)
	seen := map[netip.Addr]bool{}
	for _, p := range sb.Pods() {
		if seen[p.IP()] {
			t.Errorf("IP %s given to two pods", p.IP())
		}
		seen[p.IP()] = true
		if got := get(t, p.HTTPClient(), "http://"+MetadataIP+"/"); got != p.IP().String() {
			t.Errorf("%s: server saw %q, want %s", p.Name(), got, p.IP())
		}
	}
	if len(seen) != n {
		t.Errorf("got %d pods, want %d", len(seen), n)
	}
}
