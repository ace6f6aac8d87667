package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"

	"github.com/nodekit/nodekit/pkg/agent"
	"github.com/nodekit/nodekit/pkg/logship/checkpoint"
	"github.com/nodekit/nodekit/pkg/logship/filepos"
	"github.com/nodekit/nodekit/test/kubeapi"
	"github.com/nodekit/nodekit/test/podlogs"
	"github.com/nodekit/nodekit/test/testbed"
)

const (
	lsNamespace = "bench"
	lsCluster   = "bench"
	lsGroup     = "/aws/containerinsights/" + lsCluster + "/application"
	lsLineBytes = 110
	// lsCountPort is where the bench serves the emulator to logship through
	// a wrapper that counts accepted events, so waiting for the end costs
	// nothing per request.
	lsCountPort = "4567"
	criTime     = "2006-01-02T15:04:05.000000000Z"
)

// logFile is one container's log as the kubelet lays it out.
type logFile struct {
	Pod, Container string
	Path, Link     string
	Lines, Bytes   int64
}

// criHeaderBytes is the CRI header before the message: a fixed-width
// time (podlogs.FixedTime, UTC) and " stdout F ".
const criHeaderBytes = len("2006-01-02T15:04:05.000000000Z") + len(" stdout F ")

// criLine appends one CRI line of exactly lsLineBytes bytes (newline
// included) for sequence number seq of container c.
func criLine(dst []byte, ts time.Time, c int, seq int64) []byte {
	var msg [lsLineBytes]byte
	m := fmt.Appendf(msg[:0], "c=%d seq=%09d GET /api/v1/items 200 12ms user=alice ua=curl/8.5 ref=-", c, seq)
	size := lsLineBytes - criHeaderBytes - 1
	for len(m) < size {
		m = append(m, 'x')
	}
	return podlogs.AppendCRILayout(dst, podlogs.FixedTime, ts, "stdout", true, m[:size])
}

// writeCRIFile writes size bytes of CRI lines, timestamps a few seconds
// apart in total and recent enough for CloudWatch's age limits.
func writeCRIFile(path string, c int, size int64, start time.Time) (lines int64, err error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, fmt.Errorf("creating log file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing %s: %w", path, cerr)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	buf := make([]byte, 0, lsLineBytes)
	for lines = 0; lines*lsLineBytes < size; lines++ {
		buf = criLine(buf[:0], start.Add(time.Duration(lines)*10*time.Microsecond), c, lines)
		if _, err := w.Write(buf); err != nil {
			return lines, fmt.Errorf("writing %s: %w", path, err)
		}
	}
	if err := w.Flush(); err != nil {
		return lines, fmt.Errorf("writing %s: %w", path, err)
	}
	return lines, nil
}

// eventCounter wraps the emulator and counts the events of PutLogEvents
// calls it accepted. The SDK's JSON has no spaces and escapes every quote
// inside a message, so `"timestamp":` occurs once per event. It has its own
// notification because the count changes after the emulator has already
// woken its WaitFor callers for that request.
type eventCounter struct {
	next     http.Handler
	accepted atomic.Int64
	// bodyBytes sums the accepted PutLogEvents request bodies: what the
	// shipper had to build, sign (SHA-256 of every byte) and send.
	bodyBytes atomic.Int64

	mu      sync.Mutex
	changed chan struct{} // closed and replaced when accepted grows
}

func newEventCounter(next http.Handler) *eventCounter {
	return &eventCounter{next: next, changed: make(chan struct{})}
}

// wait blocks until at least n events were accepted or ctx ends.
func (c *eventCounter) wait(ctx context.Context, n int64) error {
	for {
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		if c.accepted.Load() >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d accepted events (have %d): %w", n, c.accepted.Load(), context.Cause(ctx))
		}
	}
}

var timestampKey = []byte(`"timestamp":`)

func (c *eventCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Amz-Target") != "Logs_20140328.PutLogEvents" {
		c.next.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "reading body", http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	c.next.ServeHTTP(sw, r)
	if sw.status == http.StatusOK {
		c.accepted.Add(int64(bytes.Count(body, timestampKey)))
		c.bodyBytes.Add(int64(len(body)))
		c.mu.Lock()
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// lsResults are logship's end-to-end figures.
type lsResults struct {
	Profile   string // where profiles went, when the run was profiled
	LineBytes int
	Lines     int64
	BytesIn   int64
	// Accepted is how many lines the emulator accepted; Shipped says
	// every line arrived, once, with its labels.
	Accepted int64
	Shipped  bool
	// WaitEnded says logship exited or ran out of time before shipping
	// every line.
	WaitEnded bool
	Wall, CPU time.Duration
	Mem       memStatus
	Puts      int
	BodyBytes float64
	Floor     *lsFloor
}

// MBPerCPU is MB of input shipped per CPU-second.
func (l *lsResults) MBPerCPU() float64 { return float64(l.BytesIn) / 1e6 / l.CPU.Seconds() }

// lsFloor is the work no logship can avoid, given DESIGN.md's record
// shape, SigV4 and checkpoints fsynced per accepted batch, each part
// measured on its own (a rate of 0: not measured).
type lsFloor struct {
	Input, Body                     float64 // bytes
	SHA256Rate, TCPRate, EncodeRate float64 // bytes per CPU-second
	Batches                         int
	CheckpointCPU                   time.Duration
	CheckpointMeasured              bool
	Used                            time.Duration // logship's CPU in all
}

// lsGoalMBPerCPU is the end-to-end goal, MB of input per CPU-second.
const lsGoalMBPerCPU = 80

// Budget is the CPU-seconds that the goal allows the input.
func (f *lsFloor) Budget() float64 { return f.Input / 1e6 / lsGoalMBPerCPU }

func (f *lsFloor) SHA256CPU() float64 { return rateCPU(f.Body, f.SHA256Rate) }
func (f *lsFloor) TCPCPU() float64    { return rateCPU(f.Body, f.TCPRate) }
func (f *lsFloor) EncodeCPU() float64 { return rateCPU(f.Input, f.EncodeRate) }

// Sum is the CPU-seconds of the parts measured; Left what the budget
// leaves beside them.
func (f *lsFloor) Sum() float64 {
	return f.SHA256CPU() + f.TCPCPU() + f.EncodeCPU() + f.CheckpointCPU.Seconds()
}

func (f *lsFloor) Left() float64 { return f.Budget() - f.Sum() }

func rateCPU(bytes, rate float64) float64 {
	if rate <= 0 {
		return 0
	}
	return bytes / rate
}

// benchLogship measures issue 4's end-to-end figure on a test bed into
// r.Logship.
func benchLogship(ctx context.Context, r *report, cfg config, logger *slog.Logger) error {
	res := &lsResults{Profile: cfg.profileDir, LineBytes: lsLineBytes}
	r.Logship = res
	fail := func(err error) error { return err }

	bed, dir, closeBed, err := startBed(ctx, logger, "logship")
	if err != nil {
		return fail(err)
	}
	defer closeBed()
	node := bed.Sandbox.Node()

	// Two pods of two containers each, known to the API server so records
	// carry labels, and their logs laid out as the kubelet does.
	containersDir := filepath.Join(dir, "containers") // test/podlogs' layout under dir
	if err := os.MkdirAll(containersDir, 0o755); err != nil {
		return fail(err)
	}
	total := int64(cfg.logshipMB) * 1_000_000
	perFile := total / 4
	start := time.Now().Add(-10 * time.Minute)
	var files []logFile
	logger.Info("logship: writing CRI logs", "MB", cfg.logshipMB)
	for p := range 2 {
		name := fmt.Sprintf("web-%d", p)
		if _, err := kubeapi.CreatePod(ctx, bed.Client(), kubeapi.PodSpec{Namespace: lsNamespace, Name: name, Node: testbed.NodeName,
			Labels:     map[string]string{"app": "web", "bench": "logship"},
			Containers: map[string]string{"app": "registry.example/app:1", "sidecar": "registry.example/sidecar:1"}}); err != nil {
			return fail(err)
		}
		pod, err := kubeapi.SetPodRunning(ctx, bed.Client(), lsNamespace, name, fmt.Sprintf("100.97.0.%d", p+1))
		if err != nil {
			return fail(err)
		}
		for _, ctr := range []string{"app", "sidecar"} {
			f, err := layOutLog(dir, pod, ctr, len(files), perFile, start)
			if err != nil {
				return fail(err)
			}
			files = append(files, f)
		}
	}
	var lines, bytesIn int64
	for _, f := range files {
		lines += f.Lines
		bytesIn += f.Bytes
	}

	counter := newEventCounter(bed.AWS)
	ln, err := node.Listen("tcp", net.JoinHostPort(node.IP().String(), lsCountPort))
	if err != nil {
		return fail(err)
	}
	serveCtx, stopServe := context.WithCancel(context.WithoutCancel(ctx))
	serveDone := make(chan error, 1)
	go func() { serveDone <- agent.ServeHTTP(serveCtx, ln, counter, 2*time.Second) }()
	defer func() { stopServe(); <-serveDone }()

	args := []string{"--kubeconfig", bed.Kube.Kubeconfig(), "--node-name", testbed.NodeName, "--log-format", "text",
		"--containers-dir", containersDir, "--state-dir", filepath.Join(dir, "state"), "--cluster-name", lsCluster}
	if cfg.profileDir != "" {
		args = append(args, "--enable-pprof")
	}
	env := append(baseEnv(dir), bed.AWSEnv()...)
	env = append(env, "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS=http://"+net.JoinHostPort(node.IP().String(), lsCountPort))
	logger.Info("logship: shipping", "lines", lines, "bytes", bytesIn)
	t0 := time.Now()
	ls, err := startAgent(node, dir, "logship", cfg.bin("logship"), args, env)
	if err != nil {
		return fail(err)
	}
	defer ls.Stop(stopGrace)
	if cfg.profileDir != "" {
		// Profiles of the burst for whoever fixes the hot path; they
		// cost logship some CPU, so figures of a profiled run are not
		// of record.
		// The CPU profile lasts 10 s from logship's start: logship runs
		// until it is taken, however soon the burst is shipped.
		pctx, stopProfile := context.WithTimeout(ctx, 2*time.Minute)
		profDone := make(chan struct{})
		go func() {
			defer close(profDone)
			fetchProfiles(pctx, node.HTTPClient(), "http://127.0.0.1:9182", cfg.profileDir, "logship", logger)
		}()
		defer func() { <-profDone; stopProfile() }()
	}

	// Done when the emulator has accepted every line; logship exiting or
	// the time limit ends the wait early.
	wctx, cancel := context.WithTimeoutCause(ctx, cfg.logshipLimit, fmt.Errorf("not shipped within %s", cfg.logshipLimit))
	defer cancel()
	exitCtx, exitCancel := context.WithCancelCause(wctx)
	defer exitCancel(nil)
	go func() {
		select {
		case <-ls.Done():
			_, err := ls.Exited()
			exitCancel(fmt.Errorf("logship exited (%v):\n%s", err, ls.Tail(40)))
		case <-exitCtx.Done():
		}
	}()
	waitErr := counter.wait(exitCtx, lines)
	wall := time.Since(t0)
	cpu, cerr := readCPU(ls.Pid())
	mem, merr := readMem(ls.Pid())
	if err := errors.Join(cerr, merr); err != nil {
		return fail(errors.Join(waitErr, err))
	}
	res.Lines, res.BytesIn, res.Wall, res.CPU, res.Mem = lines, bytesIn, wall, cpu, mem
	res.Accepted = counter.accepted.Load()
	if waitErr != nil {
		res.WaitEnded = true
		return fail(waitErr)
	}

	// Check what the emulator stored: every line exactly once, with its
	// pod's labels.
	stored, sample := int64(0), ""
	streams := bed.AWS.LogStreams(lsGroup)
	for _, st := range streams {
		evs := bed.AWS.Events(lsGroup, st)
		stored += int64(len(evs))
		if sample == "" && len(evs) > 0 {
			sample = evs[0].Message
		}
	}
	var rec struct {
		Kubernetes struct {
			Labels map[string]string `json:"labels"`
		} `json:"kubernetes"`
	}
	if err := json.Unmarshal([]byte(sample), &rec); err != nil || rec.Kubernetes.Labels["bench"] != "logship" {
		return fail(fmt.Errorf("shipped records lack the pod's labels (decode error %v): %s", err, firstLine(sample)))
	}
	if stored != lines || len(streams) != len(files) {
		return fail(fmt.Errorf("stored %d events in %d streams, want %d lines in %d streams", stored, len(streams), lines, len(files)))
	}

	res.Shipped = true
	res.Puts = bed.AWS.Count("PutLogEvents")
	res.BodyBytes = float64(counter.bodyBytes.Load())
	res.Floor = measureFloor(ctx, r, dir, float64(bytesIn), res.BodyBytes, res.Puts, cpu)
	return nil
}

// measureFloor measures, part by part on one core, the work no logship
// can avoid for input bytes shipped as body bytes of request bodies in
// batches puts.
func measureFloor(ctx context.Context, r *report, dir string, input, body float64, batches int, used time.Duration) *lsFloor {
	f := &lsFloor{Input: input, Body: body, Batches: batches, Used: used,
		SHA256Rate: sha256Rate(), TCPRate: tcpSendRate(), EncodeRate: r.Go.encodeRate()}
	if c, err := checkpointCPU(ctx, dir, batches); err == nil {
		f.CheckpointCPU, f.CheckpointMeasured = c, true
	}
	return f
}

// checkpointCPU is the process CPU that n commits cost a checkpoint store in
// dir, each commit fsyncing a write as logship's do after every batch.
func checkpointCPU(ctx context.Context, dir string, n int) (time.Duration, error) {
	sdir, err := os.MkdirTemp(dir, "checkpoint-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(sdir)
	store, err := checkpoint.Open(sdir, slog.New(slog.DiscardHandler))
	if err != nil {
		return 0, err
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- store.Run(rctx) }()
	defer func() { stop(); <-done }()
	for k := range 4 { // the bench's four streams, each with its pod's metadata
		store.SetMeta(fmt.Sprintf("stream-%d", k), []byte(`{"uid":"0a1b2c3d-0000-4000-8000-000000000000","namespace":"bench","name":"web-0","labels":{"app":"web"}}`))
	}
	cpu0, err := processCPU()
	if err != nil {
		return 0, err
	}
	for i := range n {
		pos := filepos.Position{Path: "/var/log/pods/bench_web-0_uid/app/0.log", Offset: int64(i) << 20}
		if err := store.Commit(ctx, fmt.Sprintf("stream-%d", i%4), pos); err != nil {
			return 0, err
		}
	}
	cpu1, err := processCPU()
	if err != nil {
		return 0, err
	}
	return cpu1 - cpu0, nil
}

// processCPU is this process's user+system CPU time.
func processCPU() (time.Duration, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// threadCPU is the calling thread's user+system CPU time (lock the
// goroutine to its thread around the work measured).
func threadCPU() (time.Duration, bool) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

// perThreadCPU runs work on a locked thread and returns bytes per
// CPU-second of that thread (0 if its CPU time cannot be read).
func perThreadCPU(bytes int64, work func() error) float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0, ok := threadCPU()
	if !ok {
		return 0
	}
	if err := work(); err != nil {
		return 0
	}
	cpu1, ok := threadCPU()
	if !ok || cpu1 <= cpu0 {
		return 0
	}
	return float64(bytes) / (cpu1 - cpu0).Seconds()
}

// sha256Rate measures SHA-256 throughput in bytes per CPU-second.
func sha256Rate() float64 {
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	const rounds = 128
	return perThreadCPU(rounds*int64(len(buf)), func() error {
		h := sha256.New()
		for range rounds {
			h.Write(buf)
		}
		_ = h.Sum(nil)
		return nil
	})
}

// tcpSendRate measures what writing to a TCP socket costs the writer:
// bytes per CPU-second of the writing thread, sending 256 MiB in 32 KiB
// writes (what net/http's body copy uses) to a reader in this process
// over loopback. On loopback the kernel also runs much of the receive
// path in the writer's context, as it does over the test bed's veth pair.
func tcpSendRate() float64 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(io.Discard, c)
		done <- err
	}()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		return 0
	}
	buf := make([]byte, 32<<10)
	const total = 256 << 20
	rate := perThreadCPU(total, func() error {
		for sent := 0; sent < total; sent += len(buf) {
			if _, err := c.Write(buf); err != nil {
				return err
			}
		}
		return nil
	})
	c.Close()
	if err := <-done; err != nil {
		return 0
	}
	return rate
}

// layOutLog writes a container's log as the kubelet lays it out under dir
// (test/podlogs): size bytes of CRI lines.
func layOutLog(dir string, pod *corev1.Pod, ctr string, c int, size int64, start time.Time) (logFile, error) {
	node, err := podlogs.NewNode(dir)
	if err != nil {
		return logFile{}, err
	}
	log, err := node.Add(podlogs.Spec{Namespace: pod.Namespace, Pod: pod.Name, PodUID: string(pod.UID), Container: ctr,
		ContainerID: strings.TrimPrefix(kubeapi.ContainerID(pod, ctr), "containerd://")})
	if err != nil {
		return logFile{}, err
	}
	if err := log.Close(); err != nil {
		return logFile{}, err
	}
	f := logFile{Pod: pod.Name, Container: ctr, Path: log.Path, Link: log.Link}
	n, err := writeCRIFile(f.Path, c, size, start)
	if err != nil {
		return f, err
	}
	f.Lines, f.Bytes = n, n*lsLineBytes
	return f, nil
}
