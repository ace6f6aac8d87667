package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nodekit/nodekit/pkg/agent"
	"github.com/nodekit/nodekit/test/agentproc"
	"github.com/nodekit/nodekit/test/awsemu"
	"github.com/nodekit/nodekit/test/kubeapi"
	"github.com/nodekit/nodekit/test/sandbox"
	"github.com/nodekit/nodekit/test/testbed"
)

const (
	mpNamespace = "bench"
	mpRoleKey   = "iam.amazonaws.com/role"
	mpBaseARN   = "arn:aws:iam::" + awsemu.DefaultAccountID + ":role/"
	mpCredsPath = "/latest/meta-data/iam/security-credentials/"
	mpClients   = 16
	mpRoles     = 20
	mpPods      = 110
	mpFirstRuns = 10
	// mpDirectPort is where the bench serves the IMDS emulator straight to
	// the pods, on the node IP: the baseline of the credential path.
	mpDirectPort = "8282"
)

func mpRole(i int) string { return fmt.Sprintf("bench-role-%02d", i%mpRoles) }

// loadResult is one target's share of the credential-path load.
type loadResult struct {
	Requests int
	Elapsed  time.Duration
	Lat      []time.Duration
}

func (l loadResult) rate() float64 {
	if l.Elapsed <= 0 {
		return 0
	}
	return float64(l.Requests) / l.Elapsed.Seconds()
}

// runLoad has one keep-alive client per pod request its URL in a loop for d.
func runLoad(ctx context.Context, clients []*http.Client, urls []string, d time.Duration) (loadResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lat := make([][]time.Duration, len(clients))
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for i := range clients {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				if err := getOK(ctx, clients[i], urls[i]); err != nil {
					cancel(err)
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	res := loadResult{Elapsed: time.Since(start)}
	for _, l := range lat {
		res.Requests += len(l)
		res.Lat = append(res.Lat, l...)
	}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return res, err
	}
	return res, ctx.Err()
}

// getOK does one GET and drains the body, so the connection is reused.
func getOK(ctx context.Context, hc *http.Client, url string) error {
	_, err := getBody(ctx, hc, url)
	return err
}

func getBody(ctx context.Context, hc *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s: %s", url, resp.Status, firstLine(string(body)))
	}
	return body, nil
}

// checkRole verifies that credentials JSON was issued for role, by asking
// the emulator which role its access key belongs to: a fast wrong answer
// must not count as a fast answer.
func checkRole(emu *awsemu.Emulator, body []byte, role string) error {
	var c struct{ AccessKeyId string }
	if err := json.Unmarshal(body, &c); err != nil {
		return fmt.Errorf("decoding credentials %q: %w", firstLine(string(body)), err)
	}
	arn, _, ok := emu.RoleForAccessKey(c.AccessKeyId)
	if !ok {
		return fmt.Errorf("access key %q was not issued by the emulator", c.AccessKeyId)
	}
	if arn != mpBaseARN+role {
		return fmt.Errorf("credentials are for %s, want role %s", arn, role)
	}
	return nil
}

// mpPod creates a pod network namespace and its API object with a role,
// and returns when the API server has it Running with its IP.
func mpPod(ctx context.Context, bed *testbed.Bed, name, role string) (*sandbox.Pod, error) {
	p, err := bed.Sandbox.AddPod(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := kubeapi.CreatePod(ctx, bed.Client(), kubeapi.PodSpec{Namespace: mpNamespace, Name: name, Node: testbed.NodeName,
		Annotations: map[string]string{mpRoleKey: role}}); err != nil {
		return nil, err
	}
	if _, err := kubeapi.SetPodRunning(ctx, bed.Client(), mpNamespace, name, p.IP().String()); err != nil {
		return nil, err
	}
	return p, nil
}

// startMetaproxy runs metaproxy in the bed's node with --iptables and waits
// until it is ready.
func startMetaproxy(ctx context.Context, bed *testbed.Bed, bin, dir string) (*agentproc.Proc, error) {
	node := bed.Sandbox.Node()
	args := []string{"--kubeconfig", bed.Kube.Kubeconfig(), "--node-name", testbed.NodeName, "--log-format", "text",
		"--iptables", "--host-interface", "cali+", "--host-ip", node.IP().String(), "--base-role-arn", mpBaseARN}
	p, err := startAgent(node, dir, "metaproxy", bin, args, append(baseEnv(dir), bed.AWSEnv()...))
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, node.HTTPClient(), "http://127.0.0.1:9181/readyz", p, 2*time.Minute); err != nil {
		p.Stop(stopGrace)
		return nil, err
	}
	return p, nil
}

// benchMetaproxy measures issue 3's figures on a test bed.
func benchMetaproxy(ctx context.Context, r *report, cfg config, logger *slog.Logger) (s *section) {
	s = &section{Title: "metaproxy"}
	const (
		ratioGoal = "≥ 0.95× direct IMDS emulator"
		firstGoal = "< 20 ms (median of 10 pods)"
		rssGoal   = "< 40 MiB"
	)
	measured := map[string]bool{}
	defer func() {
		if !measured["ratio"] {
			r.notMeasured("metaproxy", "credential path throughput, 16 keep-alive clients in pods", ratioGoal, s.Err)
		}
		if !measured["first"] {
			r.notMeasured("metaproxy", "first request, pod appeared 300 ms earlier, STS +120 ms", firstGoal, s.Err)
		}
		if !measured["rss"] {
			r.notMeasured("metaproxy", "RSS with 110 pods and 20 roles", rssGoal, s.Err)
		}
	}()
	fail := func(err error) *section { s.Err = err; return s }

	bed, dir, closeBed, err := startBed(ctx, logger, "metaproxy")
	if err != nil {
		return fail(err)
	}
	defer closeBed()
	node := bed.Sandbox.Node()

	// The baseline: the emulator's IMDS served straight to the pods.
	directLn, err := node.Listen("tcp", net.JoinHostPort(node.IP().String(), mpDirectPort))
	if err != nil {
		return fail(err)
	}
	serveCtx, stopServe := context.WithCancel(context.WithoutCancel(ctx))
	serveDone := make(chan error, 1)
	go func() { serveDone <- agent.ServeHTTP(serveCtx, directLn, bed.AWS.IMDSHandler(), 2*time.Second) }()
	defer func() { stopServe(); <-serveDone }()

	logger.Info("metaproxy: adding client pods", "pods", mpClients)
	clientPods := make([]*sandbox.Pod, mpClients)
	for i := range clientPods {
		if clientPods[i], err = mpPod(ctx, bed, fmt.Sprintf("client-%02d", i), mpRole(i%4)); err != nil {
			return fail(err)
		}
	}
	mp, err := startMetaproxy(ctx, bed, cfg.bin("metaproxy"), dir)
	if err != nil {
		return fail(err)
	}
	defer mp.Stop(stopGrace)

	mpClientsHTTP := make([]*http.Client, mpClients)
	directClients := make([]*http.Client, mpClients)
	mpURLs := make([]string, mpClients)
	directURLs := make([]string, mpClients)
	for i, p := range clientPods {
		mpClientsHTTP[i], directClients[i] = p.HTTPClient(), p.HTTPClient()
		mpURLs[i] = "http://" + sandbox.MetadataIP + mpCredsPath + mpRole(i%4)
		directURLs[i] = "http://" + net.JoinHostPort(node.IP().String(), mpDirectPort) + mpCredsPath + awsemu.DefaultNodeRole
		// Each pod must get its own role before its speed means anything.
		body, err := getBody(ctx, mpClientsHTTP[i], mpURLs[i])
		if err != nil {
			return fail(fmt.Errorf("pod %s through metaproxy: %w\n%s", p.Name(), err, mp.Tail(40)))
		}
		if err := checkRole(bed.AWS, body, mpRole(i%4)); err != nil {
			return fail(fmt.Errorf("pod %s through metaproxy: %w", p.Name(), err))
		}
	}

	// Warm up both paths, then alternate rounds so drift in the machine's
	// load hits both alike.
	logger.Info("metaproxy: credential-path load", "rounds", cfg.mpRounds, "round", cfg.mpRound)
	if _, err := runLoad(ctx, directClients, directURLs, time.Second); err != nil {
		return fail(fmt.Errorf("warming up the direct path: %w", err))
	}
	if _, err := runLoad(ctx, mpClientsHTTP, mpURLs, time.Second); err != nil {
		return fail(fmt.Errorf("warming up metaproxy: %w", err))
	}
	var direct, proxied loadResult
	var mpCPU time.Duration
	for round := range cfg.mpRounds {
		d, err := runLoad(ctx, directClients, directURLs, cfg.mpRound)
		if err != nil {
			return fail(fmt.Errorf("direct round %d: %w", round, err))
		}
		c0, _ := readCPU(mp.Pid())
		m, err := runLoad(ctx, mpClientsHTTP, mpURLs, cfg.mpRound)
		if err != nil {
			return fail(fmt.Errorf("metaproxy round %d: %w\n%s", round, err, mp.Tail(40)))
		}
		c1, _ := readCPU(mp.Pid())
		mpCPU += c1 - c0
		direct.Requests += d.Requests
		direct.Elapsed += d.Elapsed
		direct.Lat = append(direct.Lat, d.Lat...)
		proxied.Requests += m.Requests
		proxied.Elapsed += m.Elapsed
		proxied.Lat = append(proxied.Lat, m.Lat...)
	}
	dl, ml := summarise(direct.Lat), summarise(proxied.Lat)
	ratio := proxied.rate() / direct.rate()
	measured["ratio"] = true
	r.add(figure{Agent: "metaproxy", Name: "credential path throughput, 16 keep-alive clients in pods",
		Measured: fmt.Sprintf("%.3f× (%.0f vs %.0f req/s)", ratio, proxied.rate(), direct.rate()), Goal: ratioGoal,
		Verdict: atLeast(ratio, 0.95), Note: fmt.Sprintf("p99 %.2f ms vs %.2f ms direct", ms(ml.P99), ms(dl.P99))})
	s.addf("### Credential path, %d keep-alive clients, one per pod namespace\n", mpClients)
	s.addf("Each client is an in-process HTTP client whose socket lives in its own pod namespace. Through metaproxy it asks")
	s.addf("`http://169.254.169.254%s<its role>`, which metaproxy's `--iptables` DNAT rule in the node sends to metaproxy;", mpCredsPath)
	s.addf("directly it asks the same path of the IMDS emulator served on the node IP (port %s). %d alternating rounds of %s", mpDirectPort, cfg.mpRounds, cfg.mpRound)
	s.addf("per path, after a 1 s warm-up of each. Clients and the emulator run in the bench process, metaproxy in its own.")
	s.addf("The emulator is not a free server (each request takes its lock, is recorded and wakes its waiters), and on a busy")
	s.addf("machine metaproxy, a separate process, gets its own share of the CPUs: the ratio compares these two, nothing more.\n")
	s.addf("| Path | Requests | req/s | p50 | p99 | max |")
	s.addf("|---|---|---|---|---|---|")
	s.addf("| IMDS emulator, direct | %d | %.0f | %.3f ms | %.3f ms | %.3f ms |", direct.Requests, direct.rate(), ms(dl.P50), ms(dl.P99), ms(dl.Max))
	s.addf("| metaproxy (DNAT) | %d | %.0f | %.3f ms | %.3f ms | %.3f ms |", proxied.Requests, proxied.rate(), ms(ml.P50), ms(ml.P99), ms(ml.Max))
	if proxied.Requests > 0 {
		s.addf("\nmetaproxy used %.1f µs of CPU per request during its rounds.", float64(mpCPU.Microseconds())/float64(proxied.Requests))
	}

	// First request of a new pod, with STS slowed down.
	logger.Info("metaproxy: first requests of new pods with STS delayed 120 ms")
	bed.AWS.SetFault("AssumeRole", awsemu.Fault{Latency: 120 * time.Millisecond})
	var firsts []time.Duration
	var trials []string
	for i := range mpFirstRuns {
		role := mpRole(4 + i)
		p, err := mpPod(ctx, bed, fmt.Sprintf("fresh-%02d", i), role)
		if err != nil {
			bed.AWS.ClearFaults()
			return fail(err)
		}
		appeared := time.Now()
		// The scenario, not synchronisation: the pod asks 300 ms after it
		// appeared (Running with its IP in the API server).
		select {
		case <-time.After(time.Until(appeared.Add(300 * time.Millisecond))):
		case <-ctx.Done():
			bed.AWS.ClearFaults()
			return fail(ctx.Err())
		}
		hc := p.HTTPClient() // a new connection, as a pod's first SDK call makes
		t0 := time.Now()
		body, err := getBody(ctx, hc, "http://"+sandbox.MetadataIP+mpCredsPath+role)
		took := time.Since(t0)
		hc.CloseIdleConnections()
		if err == nil {
			err = checkRole(bed.AWS, body, role)
		}
		if err != nil {
			bed.AWS.ClearFaults()
			return fail(fmt.Errorf("first request of pod fresh-%02d: %w\n%s", i, err, mp.Tail(40)))
		}
		firsts = append(firsts, took)
		trials = append(trials, fmt.Sprintf("%.2f", ms(took)))
	}
	bed.AWS.ClearFaults()
	fl := summarise(firsts)
	measured["first"] = true
	r.add(figure{Agent: "metaproxy", Name: "first request, pod appeared 300 ms earlier, STS +120 ms",
		Measured: fmt.Sprintf("%.2f ms median", ms(fl.P50)), Goal: firstGoal, Verdict: below(ms(fl.P50), 20),
		Note: fmt.Sprintf("max %.2f ms over %d pods", ms(fl.Max), len(firsts))})
	s.addf("\n### First request of a new pod\n")
	s.addf("With the emulator's AssumeRole delayed 120 ms, %d pods were created one after another (each its own namespace and", mpFirstRuns)
	s.addf("role); 300 ms after the API server reported each Running with its IP, the pod made its first credential request on a")
	s.addf("new connection. Times (ms): %s. Median %.2f ms, max %.2f ms.", strings.Join(trials, ", "), ms(fl.P50), ms(fl.Max))

	// Memory with 110 pods and 20 roles.
	have := mpClients + mpFirstRuns
	logger.Info("metaproxy: adding API-only pods", "pods", mpPods-have)
	for i := range mpPods - have {
		name := fmt.Sprintf("mem-%03d", i)
		if _, err := kubeapi.CreatePod(ctx, bed.Client(), kubeapi.PodSpec{Namespace: mpNamespace, Name: name, Node: testbed.NodeName,
			Annotations: map[string]string{mpRoleKey: mpRole(i)}}); err != nil {
			return fail(err)
		}
		// Addresses outside the sandbox's pod range: these pods never ask.
		if _, err := kubeapi.SetPodRunning(ctx, bed.Client(), mpNamespace, name, fmt.Sprintf("100.97.%d.%d", i/250, i%250+1)); err != nil {
			return fail(err)
		}
	}
	// Every pod's credentials prefetched: one successful AssumeRole per
	// pod session.
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	sessions := 0
	err = bed.AWS.WaitFor(wctx, func() bool {
		seen := map[string]bool{}
		for _, c := range bed.AWS.STSCalls() {
			if c.Action == "AssumeRole" && c.ErrorCode == "" {
				seen[c.RoleSessionName] = true
			}
		}
		sessions = len(seen)
		return sessions >= mpPods
	})
	cancel()
	if err != nil {
		return fail(fmt.Errorf("waiting for credentials of %d pods (have %d sessions): %w", mpPods, sessions, err))
	}
	mem, err := readMem(mp.Pid())
	if err != nil {
		return fail(err)
	}
	measured["rss"] = true
	r.add(figure{Agent: "metaproxy", Name: "RSS with 110 pods and 20 roles", Measured: fmt.Sprintf("%.1f MiB", mib(mem.RSS)),
		Goal: rssGoal, Verdict: below(mib(mem.RSS), 40), Note: fmt.Sprintf("VmRSS once all 110 pods' credentials were cached; peak (VmHWM) over the whole run, load included: %.1f MiB", mib(mem.Peak))})
	s.addf("\n### Memory\n")
	s.addf("%d pods on the node (%d with namespaces, the rest API objects only), %d roles, every pod's credentials prefetched", mpPods, have, mpRoles)
	s.addf("(%d AssumeRole sessions): VmRSS %.1f MiB (%.1f MiB of it file-backed, i.e. the executable), VmHWM %.1f MiB (the peak includes the load rounds above).", sessions, mib(mem.RSS), mib(mem.File), mib(mem.Peak))
	return s
}
