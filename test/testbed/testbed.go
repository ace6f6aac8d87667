// Package testbed brings up a whole node for end-to-end tests, the demo and
// benchmarks: a sandbox node namespace with pods (test/sandbox), a real
// kube-apiserver and etcd running inside the node namespace (test/kubeapi),
// and the AWS emulator (test/awsemu) answering as IMDS at 169.254.169.254:80
// and as STS and CloudWatch Logs at the node IP, all inside the node
// namespace. Nothing listens in, or routes to, the root namespace.
package testbed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodekit/nodekit/pkg/agent"
	"github.com/nodekit/nodekit/test/awsemu"
	"github.com/nodekit/nodekit/test/kubeapi"
	"github.com/nodekit/nodekit/test/sandbox"
)

// NodeName is the Kubernetes node the sandbox plays.
const NodeName = "nodekit-node"

// AWSPort is where the emulator serves STS and CloudWatch Logs on the node IP.
const AWSPort = 4566

// Config shapes the bed.
type Config struct {
	// Emulator options (region, clock, IMDS instance).
	AWS awsemu.Options
	// Logger receives the components' logs; nil discards them.
	Logger *slog.Logger
}

// Bed is a running node. Close tears everything down.
type Bed struct {
	Sandbox *sandbox.Sandbox
	Kube    *kubeapi.Server
	AWS     *awsemu.Emulator

	logger *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
}

// Pod is a pod in both worlds: a network namespace and an API object.
type Pod struct {
	Net *sandbox.Pod
	API *corev1.Pod
}

// New brings the node up. On error everything already started is removed.
func New(ctx context.Context, cfg Config) (_ *Bed, err error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := &Bed{logger: logger}
	defer func() {
		if err != nil {
			err = errors.Join(err, b.Close())
		}
	}()
	if b.Sandbox, err = sandbox.New(ctx, sandbox.Config{}, logger.With("component", "sandbox")); err != nil {
		return nil, fmt.Errorf("creating sandbox: %w", err)
	}
	node := b.Sandbox.Node()

	b.AWS = awsemu.New(cfg.AWS)
	serveCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.cancel = cancel
	for _, addr := range []string{net.JoinHostPort(sandbox.MetadataIP, "80"), b.AWSAddr()} {
		ln, err := node.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listening for the AWS emulator on %s in the node: %w", addr, err)
		}
		b.serve(serveCtx, ln, b.AWS)
	}

	b.Kube, err = kubeapi.Start(ctx, kubeapi.Config{
		Netns:            node,
		AdvertiseAddress: node.IP().String(),
		Logger:           logger.With("component", "kubeapi"),
	})
	if err != nil {
		return nil, fmt.Errorf("starting kube-apiserver in the node: %w", err)
	}
	return b, nil
}

// Start is New for a test: it fails the test on error and closes the bed in
// the test's cleanup.
func Start(tb testing.TB, cfg Config) *Bed {
	tb.Helper()
	sandbox.RequireRoot(tb)
	b, err := New(tb.Context(), cfg)
	if err != nil {
		tb.Fatalf("starting test bed: %v", err)
	}
	tb.Cleanup(func() {
		if err := b.Close(); err != nil {
			tb.Errorf("closing test bed: %v", err)
		}
	})
	return b
}

func (b *Bed) serve(ctx context.Context, ln net.Listener, h http.Handler) {
	b.wg.Go(func() {
		if err := agent.ServeHTTP(ctx, ln, h, 2*time.Second); err != nil {
			b.mu.Lock()
			b.errs = append(b.errs, err)
			b.mu.Unlock()
		}
	})
}

// Client is an admin clientset for the bed's API server.
func (b *Bed) Client() kubernetes.Interface { return b.Kube.Client() }

// AWSAddr is host:port of the emulator's STS and CloudWatch Logs endpoint,
// reachable from inside the node namespace.
func (b *Bed) AWSAddr() string {
	return net.JoinHostPort(b.Sandbox.Node().IP().String(), strconv.Itoa(AWSPort))
}

// AWSEnv is the environment an agent in the node needs to reach the emulator
// through the SDK's ordinary configuration; credentials come from the
// emulated IMDS (the node role), as on an EC2 node.
func (b *Bed) AWSEnv() []string {
	endpoint := "http://" + b.AWSAddr()
	return []string{
		"AWS_REGION=" + b.AWS.Region(),
		"AWS_ENDPOINT_URL_STS=" + endpoint,
		"AWS_ENDPOINT_URL_CLOUDWATCH_LOGS=" + endpoint,
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
	}
}

// AddPod creates a pod namespace and its API object bound to the node,
// reported Running with the namespace's IP.
func (b *Bed) AddPod(ctx context.Context, spec kubeapi.PodSpec) (*Pod, error) {
	netPod, err := b.Sandbox.AddPod(ctx)
	if err != nil {
		return nil, fmt.Errorf("adding pod namespace: %w", err)
	}
	spec.Node = NodeName
	if _, err := kubeapi.CreatePod(ctx, b.Client(), spec); err != nil {
		return nil, errors.Join(err, netPod.Delete(ctx))
	}
	api, err := kubeapi.SetPodRunning(ctx, b.Client(), spec.Namespace, spec.Name, netPod.IP().String())
	if err != nil {
		return nil, errors.Join(err, netPod.Delete(ctx))
	}
	return &Pod{Net: netPod, API: api}, nil
}

// Close stops the API server, the emulator's listeners and the sandbox.
func (b *Bed) Close() error {
	var errs []error
	if b.Kube != nil {
		errs = append(errs, b.Kube.Close())
	}
	if b.cancel != nil {
		b.cancel()
	}
	b.wg.Wait()
	if b.Sandbox != nil {
		errs = append(errs, b.Sandbox.Close())
	}
	b.mu.Lock()
	errs = append(errs, b.errs...)
	b.mu.Unlock()
	return errors.Join(errs...)
}
