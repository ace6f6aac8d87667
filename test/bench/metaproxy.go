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
	"slices"
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

// mpResults are metaproxy's figures; a part is nil when the area failed
// before it.
type mpResults struct {
	Throughput *mpThroughput
	First      *mpFirst
	Memory     *mpMemory
}

// mpThroughput is the credential path under load, through metaproxy and
// straight to the emulator.
type mpThroughput struct {
	Clients, Rounds       int
	Round                 time.Duration
	CredsPath, DirectPort string
	Direct, Proxied       mpPath
	CPUMicrosPerRequest   float64
}

// mpPath is one path's requests, rate and latencies.
type mpPath struct {
	Requests int
	Rate     float64
	Lat      latencies
}

// Ratio is metaproxy's request rate over the emulator's.
func (t *mpThroughput) Ratio() float64 { return t.Proxied.Rate / t.Direct.Rate }

// mpFirst is the first request of new pods with STS slowed down.
type mpFirst struct {
	Trials []time.Duration
	Lat    latencies
}

// mpMemory is metaproxy's memory with every pod's credentials cached.
type mpMemory struct {
	Pods, WithNamespaces, Roles, Sessions int
	Mem                                   memStatus
}

// benchMetaproxy measures issue 3's figures on a test bed into r.Metaproxy.
func benchMetaproxy(ctx context.Context, r *report, cfg config, logger *slog.Logger) error {
	res := &mpResults{}
	r.Metaproxy = res
	fail := func(err error) error { return err }

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
	res.Throughput = &mpThroughput{Clients: mpClients, Rounds: cfg.mpRounds, Round: cfg.mpRound, CredsPath: mpCredsPath, DirectPort: mpDirectPort,
		Direct:  mpPath{Requests: direct.Requests, Rate: direct.rate(), Lat: summarise(direct.Lat)},
		Proxied: mpPath{Requests: proxied.Requests, Rate: proxied.rate(), Lat: summarise(proxied.Lat)}}
	if proxied.Requests > 0 {
		res.Throughput.CPUMicrosPerRequest = float64(mpCPU.Microseconds()) / float64(proxied.Requests)
	}

	// First request of a new pod, with STS slowed down.
	logger.Info("metaproxy: first requests of new pods with STS delayed 120 ms")
	bed.AWS.SetFault("AssumeRole", awsemu.Fault{Latency: 120 * time.Millisecond})
	var firsts []time.Duration
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
	}
	bed.AWS.ClearFaults()
	res.First = &mpFirst{Trials: slices.Clone(firsts), Lat: summarise(firsts)}

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
	res.Memory = &mpMemory{Pods: mpPods, WithNamespaces: have, Roles: mpRoles, Sessions: sessions, Mem: mem}
	return nil
}
