package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nodekit/nodekit/test/agentproc"
	"github.com/nodekit/nodekit/test/kubeapi"
	"github.com/nodekit/nodekit/test/podlogs"
	"github.com/nodekit/nodekit/test/sandbox"
	"github.com/nodekit/nodekit/test/testbed"
)

const (
	clusterName  = "demo"
	accountID    = "123456789012"
	baseRoleARN  = "arn:aws:iam::" + accountID + ":role/"
	awsCLI       = "/usr/bin/aws" // Debian's AWS CLI v2 (package awscli)
	mpMetrics    = "127.0.0.1:9181"
	lsMetrics    = "127.0.0.1:9182"
	nodeexpAddr  = "127.0.0.1:9100"
	logGroup     = "/aws/containerinsights/" + clusterName + "/application"
	stepTimeout  = 90 * time.Second
	agentTimeout = 45 * time.Second
	stopGrace    = 10 * time.Second
)

// demo is one run. Its fields are filled in as the steps go, and teardown
// removes whatever exists whichever step failed.
type demo struct {
	out     *narrator
	binDir  string
	oneshot bool
	verbose bool
	stderr  io.Writer

	work     string // temporary work dir: logs, container logs, logship state
	logger   *slog.Logger
	logClose func() error
	bed      *testbed.Bed
	agents   map[string]*agentproc.Proc
	order    []string // agent start order, stopped in reverse
	pods     []*demoPod
	writers  sync.WaitGroup // stay-up log writers
	failures []string
}

// demoPod is a pod of the story: its role, its container log and what
// happened to it.
type demoPod struct {
	namespace, name, role string
	container, image      string
	allowed               string // the namespace's allowed-roles annotation
	wantDenied            bool
	pod                   *testbed.Pod
	log                   *podlogs.Container
}

// The pods the demo creates: two teams with their own roles, and a pod in a
// restricted namespace that asks for a role it is not allowed.
func storyPods() []*demoPod {
	return []*demoPod{
		{namespace: "shop", name: "web", role: "shop-web", container: "nginx", image: "nginx:1.27",
			allowed: `["shop-*"]`},
		{namespace: "billing", name: "invoicer", role: "billing-invoicer", container: "app", image: "registry.example/invoicer:2.4",
			allowed: `["billing-*"]`},
		{namespace: "guest", name: "intruder", role: "billing-invoicer", container: "app", image: "registry.example/guest:1.0",
			allowed: `["guest-readonly"]`, wantDenied: true},
	}
}

// Run runs the whole demo and returns the exit code.
func (d *demo) Run(ctx context.Context) int {
	d.out.Printf("nodekit demo: one Kubernetes node on this machine, built from network namespaces,\n" +
		"a real kube-apiserver and an AWS emulator, running nodekit's three agents from this checkout.\n" +
		"Nothing leaves the machine and the root network namespace is never changed.\n")
	d.agents = map[string]*agentproc.Proc{}

	err := d.bringUp(ctx)
	if err == nil {
		d.show(ctx)
	}
	stayedUp := false
	if err == nil && ctx.Err() == nil && !d.oneshot {
		stayedUp = true
		d.stayUp(ctx)
	}
	interrupted := errors.Is(context.Cause(ctx), errInterrupted)

	if d.work != "" {
		d.out.Section("Tearing down")
	}
	terr := d.teardown()
	switch {
	case terr != nil:
		d.out.Printf("\nteardown FAILED: %v\nrun `make demo` again or `ip netns list`: sandboxes of dead runs are removed at start.\n", terr)
		return 1
	case err != nil && !interrupted:
		d.out.Printf("\ndemo FAILED: %v\n", err)
		return 1
	case interrupted && !stayedUp:
		d.out.Printf("\ndemo interrupted; everything it started was removed.\n")
		return 130
	case len(d.failures) > 0:
		d.out.Printf("\ndemo finished with %d failed step(s):\n", len(d.failures))
		for _, f := range d.failures {
			first, _, _ := strings.Cut(f, "\n")
			d.out.Printf("  - %s\n", first)
		}
		return 1
	}
	d.out.Printf("\ndemo finished in %v: every step worked and everything it started was removed.\n", time.Since(d.out.start).Round(time.Second))
	return 0
}

// fail records a failed step that does not stop the demo.
func (d *demo) fail(step string, err error) {
	d.failures = append(d.failures, fmt.Sprintf("%s: %v", step, err))
}

// bringUp starts the node, the agents and the pods. An error here stops the
// demo (after teardown); an agent that does not start is recorded and the
// parts of the story that need it are skipped.
func (d *demo) bringUp(ctx context.Context) error {
	d.out.Section("Starting the node")
	if err := d.preflight(ctx); err != nil {
		return err
	}
	done := d.out.Step("creating the sandbox node, etcd, kube-apiserver and the AWS emulator")
	bctx, cancel := context.WithTimeout(ctx, stepTimeout)
	bed, err := testbed.New(bctx, testbed.Config{Logger: d.logger.With("component", "testbed")})
	cancel()
	done(err)
	if err != nil {
		return fmt.Errorf("starting the test bed: %w", err)
	}
	d.bed = bed
	node := bed.Sandbox.Node()
	d.out.Detail("sandbox id       %s", bed.Sandbox.ID())
	d.out.Detail("node namespace   %s (node IP %s; `ip netns exec %s bash` gets you a shell on the node)", node.Name(), node.IP(), node.Name())
	d.out.Detail("kube-apiserver   %s (kubeconfig %s)", bed.Kube.URL(), bed.Kube.Kubeconfig())
	d.out.Detail("kube dir         %s", bed.Kube.Dir())
	d.out.Detail("sandbox dir      %s", bed.Sandbox.Dir())
	d.out.Detail("AWS emulator     IMDS at %s:80, STS and CloudWatch Logs at http://%s (region %s)", sandbox.MetadataIP, bed.AWSAddr(), bed.AWS.Region())

	d.out.Section("Starting nodekit's agents in the node")
	d.startAgents(ctx)

	d.out.Section("Scheduling pods")
	return d.addPods(ctx)
}

// preflight checks root, the agents' binaries and the tools, and creates the
// work dir.
func (d *demo) preflight(ctx context.Context) error {
	done := d.out.Step("checking the machine (root, binaries, AWS CLI, kube-apiserver build)")
	err := func() error {
		if os.Geteuid() != 0 {
			return fmt.Errorf("the demo creates network namespaces and needs root (running as uid %d); run `sudo make demo`", os.Geteuid())
		}
		abs, err := filepath.Abs(d.binDir)
		if err != nil {
			return fmt.Errorf("resolving %s: %w", d.binDir, err)
		}
		d.binDir = abs
		var missing []string
		for _, name := range []string{"metaproxy", "logship", "nodeexp"} {
			if _, err := os.Stat(filepath.Join(abs, name)); err != nil {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			// Not fatal: the demo shows what works and says what does not.
			d.out.Detail("missing in %s: %s (run `make build`); their steps will fail", abs, strings.Join(missing, ", "))
		}
		if _, err := os.Stat(awsCLI); err != nil {
			d.out.Detail("%s not found (install the Debian package awscli, `make deps` does): the AWS CLI steps will fail", awsCLI)
		}
		if _, err := kubeapi.EtcdPath(); err != nil {
			return err
		}
		if os.Getenv("NODEKIT_KUBE_BIN") == "" {
			d.out.Detail("finding kube-apiserver %s (built once from the Go module proxy into the cache; the first time takes minutes)", kubeapi.Version)
		}
		if _, err := kubeapi.Binaries(ctx); err != nil {
			return fmt.Errorf("kube-apiserver binaries: %w", err)
		}
		if removed, err := removeStaleWorkDirs(os.TempDir(), time.Now()); err != nil {
			d.out.Detail("%v", err)
		} else if len(removed) > 0 {
			d.out.Detail("removed work dirs of runs that died without tearing down: %s", strings.Join(removed, " "))
		}
		d.work, err = os.MkdirTemp("", workDirPrefix)
		if err != nil {
			return fmt.Errorf("creating work dir: %w", err)
		}
		if err := writePidFile(d.work); err != nil {
			return err
		}
		f, err := os.Create(filepath.Join(d.work, "components.log"))
		if err != nil {
			return fmt.Errorf("creating components log: %w", err)
		}
		var w io.Writer = f
		if d.verbose {
			w = io.MultiWriter(f, d.stderr)
		}
		d.logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
		d.logClose = f.Close
		return nil
	}()
	done(err)
	if err != nil {
		return err
	}
	d.out.Detail("work dir         %s (agents' logs, container logs, logship state)", d.work)
	return nil
}

// agentEnv is the environment of an agent in the node: a clean one with the
// emulator's endpoints, credentials from the emulated IMDS (the node role).
func (d *demo) agentEnv() []string {
	return append([]string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + d.work,
	}, d.bed.AWSEnv()...)
}

func (d *demo) startAgents(ctx context.Context) {
	node := d.bed.Sandbox.Node()
	kubeconfig := d.bed.Kube.Kubeconfig()
	common := []string{"--kubeconfig", kubeconfig, "--node-name", testbed.NodeName, "--log-format", "text"}
	var tee io.Writer
	if d.verbose {
		tee = d.stderr
	}
	type agentSpec struct {
		name, what string
		args       []string
		ready      string
	}
	for _, dir := range []string{"containers", "logship-state"} {
		if err := os.MkdirAll(filepath.Join(d.work, dir), 0o755); err != nil {
			d.fail("creating "+dir, err)
		}
	}
	specs := []agentSpec{
		{"metaproxy", "metaproxy: intercepts pods' IMDS traffic (iptables in the node namespace, -i cali+) and hands each pod its role",
			append([]string{"--iptables", "--host-interface", "cali+", "--host-ip", node.IP().String(),
				"--base-role-arn", baseRoleARN, "--namespace-restrictions", "--metrics-addr", mpMetrics}, common...),
			"http://" + mpMetrics + "/readyz"},
		{"logship", "logship: tails container logs and ships them to CloudWatch Logs with Kubernetes metadata",
			append([]string{"--containers-dir", filepath.Join(d.work, "containers"), "--state-dir", filepath.Join(d.work, "logship-state"),
				"--cluster-name", clusterName, "--multiline", `billing=^(INFO|WARN|ERROR) `, "--multiline-wait", "1s",
				"--batch-wait", "500ms", "--poll-interval", "250ms", "--metrics-addr", lsMetrics}, common...),
			// Ready only after the first batch is sent; up is enough here.
			"http://" + lsMetrics + "/healthz"},
		{"nodeexp", "nodeexp: node_exporter's metrics plus per-pod cgroup metrics",
			append([]string{"--web.listen-address", nodeexpAddr}, common...),
			"http://" + nodeexpAddr + "/healthz"},
	}
	for _, s := range specs {
		if ctx.Err() != nil {
			return
		}
		done := d.out.Step("starting " + s.what)
		err := func() error {
			a, err := agentproc.Start(node, agentproc.Spec{Name: s.name, Bin: filepath.Join(d.binDir, s.name), Args: s.args,
				Env: d.agentEnv(), LogDir: d.work, Tee: tee})
			if err != nil {
				return err
			}
			d.agents[s.name] = a
			d.order = append(d.order, s.name)
			wctx, cancel := context.WithTimeout(ctx, agentTimeout)
			defer cancel()
			return a.WaitReady(wctx, node.HTTPClient(), s.ready)
		}()
		done(err)
		if err != nil {
			if ctx.Err() == nil {
				d.fail("starting "+s.name, err)
			}
			continue
		}
		d.out.Detail("%s %s  (log: %s)", s.name, shellJoin(s.args), d.agents[s.name].LogPath())
	}
}

// agentUp reports whether the named agent started and still runs.
func (d *demo) agentUp(name string) bool {
	a, ok := d.agents[name]
	if !ok {
		return false
	}
	done, _ := a.Exited()
	return !done
}

func (d *demo) addPods(ctx context.Context) error {
	d.pods = storyPods()
	now := time.Now
	for _, p := range d.pods {
		done := d.out.Step(fmt.Sprintf("pod %s/%s with role annotation %q (namespace allows %s)", p.namespace, p.name, p.role, p.allowed))
		err := func() error {
			if _, err := kubeapi.EnsureNamespace(ctx, d.bed.Client(), p.namespace, map[string]string{"iam.amazonaws.com/allowed-roles": p.allowed}); err != nil {
				return err
			}
			pod, err := d.bed.AddPod(ctx, kubeapi.PodSpec{
				Namespace:   p.namespace,
				Name:        p.name,
				Labels:      map[string]string{"app": p.name, "team": p.namespace},
				Annotations: map[string]string{"iam.amazonaws.com/role": p.role},
				Containers:  map[string]string{p.container: p.image},
			})
			if err != nil {
				return err
			}
			p.pod = pod
			p.log, err = newContainerLog(d.work, pod.API, p.container, now)
			return err
		}()
		done(err)
		if err != nil {
			return fmt.Errorf("adding pod %s/%s: %w", p.namespace, p.name, err)
		}
		d.out.Detail("network namespace %s, IP %s, veth %s on the node", p.pod.Net.Name(), p.pod.Net.IP(), p.pod.Net.HostVeth())
	}
	return nil
}

// show is the story once everything runs: credentials, logs, metrics. A
// failure in one part is recorded and the next part still runs.
func (d *demo) show(ctx context.Context) {
	d.out.Section("Pods ask for AWS credentials (AWS CLI v2 and the AWS SDK for Go v2, through 169.254.169.254)")
	if !d.agentUp("metaproxy") {
		d.out.Detail("skipped: metaproxy is not running (see above)")
	} else {
		d.credentials(ctx)
	}
	if ctx.Err() != nil {
		return
	}
	d.out.Section("Pods write logs; logship ships them to CloudWatch Logs")
	d.logs(ctx)
	if ctx.Err() != nil {
		return
	}
	d.out.Section("Metrics: a Prometheus-style scrape from inside the node")
	d.metrics(ctx)
}

// teardown stops the agents (metaproxy removes its iptables rules with
// `metaproxy uninstall`; they live only in the node namespace anyway),
// closes the bed (kube-apiserver, etcd, emulator, namespaces) and removes the
// work dir. It runs whatever failed before and whatever ctx says.
func (d *demo) teardown() error {
	d.writers.Wait()
	var errs []error
	for _, p := range d.pods {
		if p.log != nil {
			errs = append(errs, p.log.Close())
		}
	}
	for i := len(d.order) - 1; i >= 0; i-- {
		a := d.agents[d.order[i]]
		done := d.out.Step("stopping " + a.Name())
		err := a.Stop(stopGrace)
		done(err)
		errs = append(errs, err)
	}
	if d.bed != nil {
		if _, ok := d.agents["metaproxy"]; ok {
			done := d.out.Step("removing metaproxy's iptables rules in the node (metaproxy uninstall)")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			out, err := d.bed.Sandbox.Node().Command(ctx, filepath.Join(d.binDir, "metaproxy"), "uninstall", "--host-interface", "cali+").CombinedOutput()
			cancel()
			if err != nil {
				err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
				// Not a leak: the rules die with the node namespace below.
				d.fail("metaproxy uninstall", err)
			}
			done(err)
		}
		id := d.bed.Sandbox.ID()
		done := d.out.Step("removing the node: kube-apiserver, etcd, emulator, pod and node namespaces (nk-" + id + "-*)")
		err := d.bed.Close()
		if err == nil {
			err = checkNoNamespaces(id)
		}
		done(err)
		errs = append(errs, err)
	}
	if d.logClose != nil {
		errs = append(errs, d.logClose())
	}
	if d.work != "" {
		done := d.out.Step("removing the work dir " + d.work)
		err := os.RemoveAll(d.work)
		done(err)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkNoNamespaces confirms no namespace of sandbox id remains.
func checkNoNamespaces(id string) error {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return fmt.Errorf("listing namespaces: %w", err)
	}
	var left []string
	for _, line := range strings.Split(string(out), "\n") {
		if name, _, _ := strings.Cut(line, " "); strings.HasPrefix(name, "nk-"+id+"-") {
			left = append(left, name)
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("namespaces left behind: %s", strings.Join(left, ", "))
	}
	return nil
}
