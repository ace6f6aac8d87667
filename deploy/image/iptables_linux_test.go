package image

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodekit/nodekit/deploy"
	"github.com/nodekit/nodekit/deploy/image/xtables"
	"github.com/nodekit/nodekit/pkg/metaproxy/intercept"
)

const netnsPrefix = "nkimg-"

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (mount and network namespaces, iptables); CI runs as root")
	}
}

// TestMetaproxyRuleOnReadOnlyRoot runs the image's metaproxy as
// deploy/nodekit.yaml runs it (its command, arguments, environment,
// capabilities, mounts and read-only root) inside a network namespace of
// its own, on a node whose kubelet uses the nft backend and on one whose
// kubelet uses legacy: the image's iptables-wrapper must pick the node's
// backend with the root read-only, metaproxy must install its DNAT rule
// there, leave it in place when it stops, and `metaproxy uninstall` must
// remove it. Nothing here touches the root network namespace.
func TestMetaproxyRuleOnReadOnlyRoot(t *testing.T) {
	requireRoot(t)
	for _, tool := range []string{"ip", "nsenter", "iptables-nft-save", "iptables-legacy-save"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (Debian iptables, iproute2, util-linux): %v", tool, err)
		}
	}
	removeStaleNetns(t)
	res := builtImage(t)
	img, ok := platformImages(t, res)[runtime.GOARCH]
	if !ok {
		t.Fatalf("the image has no %s platform", runtime.GOARCH)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	m := loadManifest(t)
	c, ok := m.Container("metaproxy")
	if !ok {
		t.Fatal("nodekit.yaml has no metaproxy container")
	}
	if !slices.Contains(c.Args, "--iptables") {
		t.Fatal("nodekit.yaml's metaproxy does not run with --iptables")
	}
	root := filepath.Join(t.TempDir(), "rootfs")
	unpackImage(t, img, root)
	pod := newPodSandbox(t, m, c, root, cf.Config.Env)

	for _, backend := range []xtables.Mode{xtables.NFT, xtables.Legacy} {
		t.Run(string(backend), func(t *testing.T) {
			ns := netnsPrefix + strconv.Itoa(os.Getpid()) + "-" + string(backend)
			addNetns(t, ns)
			// What the kubelet leaves on a node of this backend, and what
			// the wrapper looks for.
			nodeRun(t, ns, "iptables-"+string(backend), "-t", "mangle", "-N", "KUBE-KUBELET-CANARY")
			other := xtables.NFT
			if backend == xtables.NFT {
				other = xtables.Legacy
			}

			mp := pod.start(t, ns, append(c.Command, pod.args...)...)
			if err := mp.waitFor("installed metadata interception rules", 2*time.Minute); err != nil {
				t.Fatalf("%v\nmetaproxy's log:\n%s", err, mp.log())
			}
			installed := mp.lastRecord("installed metadata interception rules")
			t.Logf("metaproxy: %v", installed)

			// As the image's own iptables-save (the wrapper again) sees it.
			out, err := pod.run(t, ns, "/usr/sbin/iptables-save", "-t", "nat")
			if err != nil {
				t.Fatalf("the image's iptables-save: %v\n%s", err, out)
			}
			t.Logf("the image's iptables-save -t nat:\n%s", out)
			for _, want := range []string{
				"-A PREROUTING -m comment --comment",
				"-j " + intercept.Chain,
				"-d 169.254.169.254/32 -i " + pod.hostInterface + " -p tcp -m tcp --dport 80",
				"-j DNAT --to-destination " + pod.hostIP + ":8181",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("the image's iptables-save lacks %q:\n%s", want, out)
				}
			}
			// In the node's backend, and only there.
			if got := nodeSave(t, ns, backend, "iptables", "nat"); !strings.Contains(got, ":"+intercept.Chain) {
				t.Errorf("iptables-%s-save shows no %s chain in the node namespace:\n%s", backend, intercept.Chain, got)
			}
			for _, table := range []string{"nat", "filter"} {
				if got := nodeSave(t, ns, other, "iptables", table); strings.Contains(got, intercept.Chain) {
					t.Errorf("a rule went to %s's %s table, but the node uses %s:\n%s", other, table, backend, got)
				}
			}
			if installed["ipv6_reject"] == true {
				if got := nodeSave(t, ns, backend, "ip6tables", "filter"); !strings.Contains(got, ":"+intercept.Chain) {
					t.Errorf("metaproxy reports an IPv6 reject rule; ip6tables-%s-save shows none:\n%s", backend, got)
				}
			}

			// Stopping leaves the rule: pods fail closed.
			if err := mp.stop(30 * time.Second); err != nil {
				t.Errorf("stopping metaproxy: %v\n%s", err, mp.log())
			}
			if got := nodeSave(t, ns, backend, "iptables", "nat"); !strings.Contains(got, "-j "+intercept.Chain) {
				t.Errorf("the rule is gone after metaproxy stopped:\n%s", got)
			}

			out, err = pod.run(t, ns, c.Command[0], "uninstall")
			if err != nil {
				t.Fatalf("metaproxy uninstall: %v\n%s", err, out)
			}
			for _, mode := range []xtables.Mode{backend, other} {
				for _, table := range []struct{ family, name string }{{"iptables", "nat"}, {"iptables", "filter"}, {"ip6tables", "filter"}} {
					if got := nodeSave(t, ns, mode, table.family, table.name); strings.Contains(got, intercept.Chain) {
						t.Errorf("after uninstall %s-%s-save -t %s still shows %s:\n%s", table.family, mode, table.name, intercept.Chain, got)
					}
				}
			}
		})
	}

	// The wrapper could not switch its links: the root was read-only.
	for _, cmd := range xtables.Commands {
		if target, err := os.Readlink(filepath.Join(root, "usr/sbin", cmd)); err != nil || target != WrapperPath {
			t.Errorf("/usr/sbin/%s -> %q (%v) after the runs, want %s unchanged", cmd, target, err, WrapperPath)
		}
	}
}

// podSandbox is the metaproxy container of nodekit.yaml, ready to run.
type podSandbox struct {
	spec          sandboxSpec
	args          []string
	hostIP        string
	hostInterface string
}

func newPodSandbox(t *testing.T, m *deploy.Manifest, c corev1.Container, root string, imageEnv []string) *podSandbox {
	t.Helper()
	host := t.TempDir()
	p := &podSandbox{hostIP: "127.0.0.1", hostInterface: "cni0"}
	sc := c.SecurityContext
	if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 0 {
		t.Fatal("this test runs metaproxy as uid 0, as nodekit.yaml does; the manifest changed")
	}
	p.spec = sandboxSpec{
		Root:       root,
		ReadOnly:   sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem,
		NoNewPrivs: sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation,
	}
	if !p.spec.ReadOnly {
		t.Error("nodekit.yaml's metaproxy no longer has a read-only root filesystem; this test still runs it read-only")
		p.spec.ReadOnly = true
	}
	if caps := sc.Capabilities; caps != nil && slices.Contains(caps.Drop, "ALL") {
		p.spec.Caps = []string{}
		for _, c := range caps.Add {
			p.spec.Caps = append(p.spec.Caps, string(c))
		}
	}

	// Mount points, as the runtime creates them before the root turns
	// read-only, and host stand-ins for the hostPath volumes.
	mountPoint := func(dst string, dir bool) string {
		real, err := inRoot(root, dst)
		if err != nil {
			t.Fatal(err)
		}
		if dir {
			err = os.MkdirAll(real, 0o755)
		} else if err = os.MkdirAll(filepath.Dir(real), 0o755); err == nil {
			var f *os.File
			if f, err = os.OpenFile(real, os.O_CREATE, 0o644); err == nil {
				f.Close()
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimPrefix(real, root)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range m.DaemonSet.Spec.Template.Spec.Volumes {
		volumes[v.Name] = v
	}
	for _, vm := range c.VolumeMounts {
		v := volumes[vm.Name]
		if v.HostPath == nil {
			t.Fatalf("volume %s of metaproxy is not a hostPath; teach this test about it", vm.Name)
		}
		isFile := v.HostPath.Type != nil && (*v.HostPath.Type == corev1.HostPathFile || *v.HostPath.Type == corev1.HostPathFileOrCreate)
		src := filepath.Join(host, "volumes", vm.Name)
		if isFile {
			if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(src, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		} else if err := os.MkdirAll(src, 0o755); err != nil {
			t.Fatal(err)
		}
		p.spec.Binds = append(p.spec.Binds, bindMount{Src: src, Dst: mountPoint(vm.MountPath, !isFile), ReadOnly: vm.ReadOnly})
	}
	// The service account the kubelet mounts; its API server (the
	// kubernetes Service) answers nothing here, which metaproxy survives.
	sa := filepath.Join(host, "serviceaccount")
	if err := os.MkdirAll(sa, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sa, "token"), []byte("image-test-token"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.spec.Binds = append(p.spec.Binds,
		bindMount{Src: sa, Dst: mountPoint("/var/run/secrets/kubernetes.io/serviceaccount", true), ReadOnly: true},
		bindMount{Src: "/dev/null", Dst: mountPoint("/dev/null", false)})

	env, err := m.Env(c, map[string]string{"metaproxy.host-interface": p.hostInterface},
		map[string]string{"spec.nodeName": "image-test-node", "status.hostIP": p.hostIP})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range c.Args {
		p.args = append(p.args, deploy.Expand(a, env))
	}
	p.spec.Env = append([]string(nil), imageEnv...)
	for k, v := range env {
		p.spec.Env = append(p.spec.Env, k+"="+v)
	}
	p.spec.Env = append(p.spec.Env,
		// What the kubelet adds for in-cluster clients (nothing listens).
		"KUBERNETES_SERVICE_HOST=127.0.0.1", "KUBERNETES_SERVICE_PORT=1",
		// Never used (no pod asks for credentials), but the SDK needs a
		// region and must not look for one at 169.254.169.254.
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=AKIDIMAGETEST", "AWS_SECRET_ACCESS_KEY=image-test", "AWS_EC2_METADATA_DISABLED=true")
	return p
}

// run runs argv in the pod's sandbox to completion.
func (p *podSandbox) run(t *testing.T, ns string, argv ...string) (string, error) {
	t.Helper()
	spec := p.spec
	spec.NetNS, spec.Argv = "/run/netns/"+ns, argv
	cmd := sandboxCommand(t, spec)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// start starts argv in the pod's sandbox; the test's cleanup kills it.
func (p *podSandbox) start(t *testing.T, ns string, argv ...string) *agentProcess {
	t.Helper()
	spec := p.spec
	spec.NetNS, spec.Argv = "/run/netns/"+ns, argv
	cmd := sandboxCommand(t, spec)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	a := &agentProcess{cmd: cmd, lines: make(chan string, 1024), exited: make(chan struct{})}
	cmd.Stdout = lockedWriter{a}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go a.read(stderr)
	t.Cleanup(func() {
		select {
		case <-a.exited:
		default:
			_ = cmd.Process.Kill()
			<-a.exited
		}
	})
	return a
}

// agentProcess is a running agent whose JSON log is read as it comes.
type agentProcess struct {
	cmd     *exec.Cmd
	mu      sync.Mutex
	buf     bytes.Buffer // stdout and the log, for failure messages
	records []map[string]any
	lines   chan string
	exited  chan struct{}
	waitErr error
}

// lockedWriter adds the agent's stdout to its log.
type lockedWriter struct{ a *agentProcess }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.a.mu.Lock()
	defer w.a.mu.Unlock()
	return w.a.buf.Write(b)
}

func (a *agentProcess) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		a.mu.Lock()
		a.buf.WriteString(line + "\n")
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil {
			a.records = append(a.records, rec)
		}
		a.mu.Unlock()
		select {
		case a.lines <- line:
		default:
		}
	}
	a.waitErr = a.cmd.Wait()
	close(a.exited)
}

func (a *agentProcess) log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.buf.String()
}

func (a *agentProcess) lastRecord(msg string) map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := len(a.records) - 1; i >= 0; i-- {
		if a.records[i]["msg"] == msg {
			return a.records[i]
		}
	}
	return nil
}

// waitFor returns once the agent logs msg; an error record about the
// rules, the agent's exit or the deadline end the wait with an error.
func (a *agentProcess) waitFor(msg string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if a.lastRecord(msg) != nil {
			return nil
		}
		if rec := a.lastRecord("metadata interception rules not in place"); rec != nil {
			return fmt.Errorf("metaproxy could not install its rules: %v", rec["err"])
		}
		select {
		case <-a.lines:
		case <-a.exited:
			if a.lastRecord(msg) != nil {
				return nil
			}
			return fmt.Errorf("metaproxy exited (%v) before logging %q", a.waitErr, msg)
		case <-deadline.C:
			return fmt.Errorf("metaproxy did not log %q within %v", msg, timeout)
		}
	}
}

// stop sends SIGTERM, as the kubelet does, and waits.
func (a *agentProcess) stop(timeout time.Duration) error {
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-a.exited:
		return a.waitErr
	case <-time.After(timeout):
		_ = a.cmd.Process.Kill()
		return fmt.Errorf("still running %v after SIGTERM", timeout)
	}
}

// addNetns creates a network namespace with only loopback, up, and
// removes it when the test ends.
func addNetns(t *testing.T, name string) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s link set lo up: %v: %s", name, err, out)
	}
}

// removeStaleNetns deletes namespaces a killed run of this test left.
func removeStaleNetns(t *testing.T) {
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), netnsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil {
			continue // its test is still running
		}
		if out, err := exec.Command("ip", "netns", "del", e.Name()).CombinedOutput(); err != nil {
			t.Logf("removing stale netns %s: %v: %s", e.Name(), err, out)
		}
	}
}

// nodeRun runs one of the host's commands in the node namespace.
func nodeRun(t *testing.T, ns string, argv ...string) string {
	t.Helper()
	out, err := exec.Command("nsenter", append([]string{"--net=/run/netns/" + ns, "--"}, argv...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s in %s: %v: %s", strings.Join(argv, " "), ns, err, out)
	}
	return string(out)
}

// nodeSave is the host's <family>-<mode>-save of one table in the node
// namespace; a table that does not exist reads as empty.
func nodeSave(t *testing.T, ns string, mode xtables.Mode, family, table string) string {
	t.Helper()
	if mode == xtables.Legacy {
		// Asking legacy for a table loads it; list only the loaded ones.
		names, err := exec.Command("nsenter", "--net=/run/netns/"+ns, "--", "cat",
			"/proc/net/"+map[string]string{"iptables": "ip", "ip6tables": "ip6"}[family]+"_tables_names").Output()
		if err != nil || !slices.Contains(strings.Fields(string(names)), table) {
			return ""
		}
	}
	out, err := exec.Command("nsenter", "--net=/run/netns/"+ns, "--", family+"-"+string(mode)+"-save", "-t", table).CombinedOutput()
	if err != nil {
		// nft: "table does not exist" for a table nobody created.
		return ""
	}
	return string(out)
}
