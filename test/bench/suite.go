package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/nodekit/nodekit/pkg/agent"
	"github.com/nodekit/nodekit/test/agentproc"
	"github.com/nodekit/nodekit/test/kubeapi"
	"github.com/nodekit/nodekit/test/testbed"
)

const suitePods = 50

// suiteResults are the three agents' idle figures on a node with pods.
type suiteResults struct {
	Pods, LinesPerPod, Sessions int
	Idle                        time.Duration
	Rows                        []suiteRow
	Total                       int64 // summed VmRSS
	IdleCPU                     time.Duration
}

// suiteRow is one agent's memory and idle CPU.
type suiteRow struct {
	Name string
	Mem  memStatus
	CPU  time.Duration
}

// benchSuite measures the three agents' idle memory on a node with 50
// pods into r.Suite.
func benchSuite(ctx context.Context, r *report, cfg config, logger *slog.Logger) error {
	fail := func(err error) error { return err }

	bed, dir, closeBed, err := startBed(ctx, logger, "suite")
	if err != nil {
		return fail(err)
	}
	defer closeBed()
	node := bed.Sandbox.Node()

	// 50 pods, each with its namespace, a role and a small container log.
	logger.Info("suite: adding pods", "pods", suitePods)
	containersDir := filepath.Join(dir, "containers") // test/podlogs' layout under dir
	if err := os.MkdirAll(containersDir, 0o755); err != nil {
		return fail(err)
	}
	const linesPerPod = 100
	for i := range suitePods {
		name := fmt.Sprintf("app-%02d", i)
		p, err := bed.AddPod(ctx, kubeapi.PodSpec{Namespace: mpNamespace, Name: name, Labels: map[string]string{"app": "suite"},
			Annotations: map[string]string{mpRoleKey: mpRole(i)}})
		if err != nil {
			return fail(err)
		}
		if _, err := layOutLog(dir, p.API, "app", i, linesPerPod*lsLineBytes, time.Now().Add(-time.Minute)); err != nil {
			return fail(err)
		}
	}

	// The counting wrapper tells when logship has shipped every line.
	counter := newEventCounter(bed.AWS)
	ln, err := node.Listen("tcp", net.JoinHostPort(node.IP().String(), lsCountPort))
	if err != nil {
		return fail(err)
	}
	serveCtx, stopServe := context.WithCancel(context.WithoutCancel(ctx))
	serveDone := make(chan error, 1)
	go func() { serveDone <- agent.ServeHTTP(serveCtx, ln, counter, 2*time.Second) }()
	defer func() { stopServe(); <-serveDone }()

	common := []string{"--kubeconfig", bed.Kube.Kubeconfig(), "--node-name", testbed.NodeName, "--log-format", "text"}
	mp, err := startMetaproxy(ctx, bed, cfg.bin("metaproxy"), dir)
	if err != nil {
		return fail(err)
	}
	defer mp.Stop(stopGrace)
	lsEnv := append(append(baseEnv(dir), bed.AWSEnv()...), "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS=http://"+net.JoinHostPort(node.IP().String(), lsCountPort))
	ls, err := startAgent(node, dir, "logship", cfg.bin("logship"),
		append(common, "--containers-dir", containersDir, "--state-dir", filepath.Join(dir, "state"), "--cluster-name", lsCluster), lsEnv)
	if err != nil {
		return fail(err)
	}
	defer ls.Stop(stopGrace)
	ne, err := startAgent(node, dir, "nodeexp", cfg.bin("nodeexp"), append(common, "--web.listen-address", "127.0.0.1:9100", "--collector.pods.log-dir", filepath.Join(dir, "pods")), baseEnv(dir))
	if err != nil {
		return fail(err)
	}
	defer ne.Stop(stopGrace)

	hc := node.HTTPClient()
	if err := waitReady(ctx, hc, "http://127.0.0.1:9182/readyz", ls, 2*time.Minute); err != nil {
		return fail(err)
	}
	// nodeexp is ready after its first collection, which a scrape starts.
	if err := waitScrape(ctx, hc, &exporter{name: "nodeexp", url: "http://127.0.0.1:9100/metrics", proc: ne}); err != nil {
		return fail(err)
	}
	if err := waitReady(ctx, hc, "http://127.0.0.1:9100/readyz", ne, time.Minute); err != nil {
		return fail(err)
	}
	// Settled: every line shipped, every pod's credentials prefetched, and
	// nodeexp scraped (above), as Prometheus would have.
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := counter.wait(wctx, suitePods*linesPerPod); err != nil {
		return fail(fmt.Errorf("logship: %w", err))
	}
	sessions := 0
	err = bed.AWS.WaitFor(wctx, func() bool {
		seen := map[string]bool{}
		for _, c := range bed.AWS.STSCalls() {
			if c.Action == "AssumeRole" && c.ErrorCode == "" {
				seen[c.RoleSessionName] = true
			}
		}
		sessions = len(seen)
		return sessions >= suitePods
	})
	if err != nil {
		return fail(fmt.Errorf("waiting for metaproxy to prefetch %d pods' credentials (%d sessions): %w", suitePods, sessions, err))
	}
	// Idle: what the node pays while nothing happens.
	logger.Info("suite: idle", "for", cfg.idle)
	agents := []*agentproc.Proc{mp, ls, ne}
	idleFrom := map[*agentproc.Proc]time.Duration{}
	for _, p := range agents {
		if idleFrom[p], err = readCPU(p.Pid()); err != nil {
			return fail(err)
		}
	}
	select {
	case <-time.After(cfg.idle):
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	res := &suiteResults{Pods: suitePods, LinesPerPod: linesPerPod, Sessions: sessions, Idle: cfg.idle}
	for _, p := range agents {
		if done, err := p.Exited(); done {
			return fail(fmt.Errorf("%s exited (%v):\n%s", p.Name(), err, p.Tail(40)))
		}
		m, err := readMem(p.Pid())
		if err != nil {
			return fail(err)
		}
		c, err := readCPU(p.Pid())
		if err != nil {
			return fail(err)
		}
		c -= idleFrom[p]
		res.Total += m.RSS
		res.IdleCPU += c
		res.Rows = append(res.Rows, suiteRow{Name: p.Name(), Mem: m, CPU: c})
	}
	r.Suite = res
	return nil
}
