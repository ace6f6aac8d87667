// Package caller finds the pod behind a metadata request's source IP. It
// reads the node's pod informer through a small interface and, for an IP the
// informer does not know yet, waits a bounded time for informer events (not
// polling) before giving up. When several pods claim one IP (the CNI reused it
// before the informer saw the old pod go), the non-terminating, running,
// newest pod wins and the choice is logged with both UIDs.
//
// A terminating pod is the caller only with care: once its sandbox is gone
// the CNI may hand its IP to a new pod whose status the kubelet has not
// reported yet, and that pod must never be taken for the old one (a first
// trial on a real node under pod churn did just that). So a request whose
// only claimant is terminating waits, like an unknown IP, for a newer
// claimant; and a pod past its deletion deadline (its grace period over,
// the kubelet killing it) is never the caller.
package caller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"k8s.io/client-go/tools/cache"

	"github.com/nodekit/nodekit/pkg/kube"
)

// DefaultWait bounds how long a request from an unknown IP waits for the
// informer: under the AWS SDKs' 1 s metadata timeouts.
const DefaultWait = 800 * time.Millisecond

// ErrUnknown: no live pod on this node has the IP.
var ErrUnknown = errors.New("no pod with this IP on this node")

// Pods is what caller needs from the node-scoped pod informer; *kube.Pods
// satisfies it. ByIP must match every status.podIPs entry and exclude
// host-network pods.
type Pods interface {
	ByIP(ip string) []*kube.Pod
}

// Resolver maps source IPs to pods. Register EventHandler() with the pod
// informer so waiting requests wake up when pods change. Safe for concurrent use.
type Resolver struct {
	pods   Pods
	wait   time.Duration
	logger *slog.Logger

	now func() time.Time

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every pod event
	logged  map[string]string
}

// New returns a Resolver that waits at most wait for unknown IPs (DefaultWait if 0).
func New(pods Pods, wait time.Duration, logger *slog.Logger) *Resolver {
	if wait <= 0 {
		wait = DefaultWait
	}
	return &Resolver{pods: pods, wait: wait, logger: logger, now: time.Now, changed: make(chan struct{}), logged: map[string]string{}}
}

// EventHandler wakes waiting lookups on every pod add, update or delete. The
// informer updates its index before it calls handlers, so a woken lookup sees
// the change.
func (r *Resolver) EventHandler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { r.notify() },
		UpdateFunc: func(any, any) { r.notify() },
		DeleteFunc: func(any) { r.notify() },
	}
}

func (r *Resolver) notify() {
	r.mu.Lock()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *Resolver) changes() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Resolve returns the pod using ip, waiting up to the configured time for the
// informer to learn about it, or ErrUnknown. A terminating pod is returned
// only if no other pod claimed ip within that time.
func (r *Resolver) Resolve(ctx context.Context, ip string) (*kube.Pod, error) {
	// Take the change channel before looking, so an event between the lookup
	// and the wait is not missed.
	ch := r.changes()
	if p := r.pick(ip); p != nil && p.DeletionTimestamp == nil {
		return p, nil
	}
	timer := time.NewTimer(r.wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a pod with IP %s: %w", ip, ctx.Err())
		case <-timer.C:
			if p := r.pick(ip); p != nil {
				r.logger.Debug("serving a terminating pod: no other pod claimed its IP", "ip", ip, "pod", p.Namespace+"/"+p.Name, "uid", p.UID)
				return p, nil
			}
			return nil, fmt.Errorf("IP %s after %v: %w", ip, r.wait, ErrUnknown)
		case <-ch:
		}
		ch = r.changes()
		if p := r.pick(ip); p != nil && p.DeletionTimestamp == nil {
			return p, nil
		}
	}
}

// pick chooses among the pods claiming ip.
func (r *Resolver) pick(ip string) *kube.Pod {
	candidates := Eligible(r.pods.ByIP(ip), r.now())
	if len(candidates) == 0 {
		return nil
	}
	if len(candidates) > 1 {
		r.logConflict(ip, candidates)
	}
	return candidates[0]
}

// logConflict logs each distinct choice once per IP, not once per request.
func (r *Resolver) logConflict(ip string, candidates []*kube.Pod) {
	key := ""
	for _, p := range candidates {
		key += string(p.UID) + ","
	}
	r.mu.Lock()
	seen := r.logged[ip] == key
	if !seen {
		if len(r.logged) > 4096 {
			clear(r.logged)
		}
		r.logged[ip] = key
	}
	r.mu.Unlock()
	if seen {
		return
	}
	others := make([]string, 0, len(candidates)-1)
	for _, p := range candidates[1:] {
		others = append(others, p.Namespace+"/"+p.Name+" uid="+string(p.UID))
	}
	w := candidates[0]
	r.logger.Warn("several pods claim one IP; chose the non-terminating, running, newest",
		"ip", ip, "namespace", w.Namespace, "pod", w.Name, "uid", string(w.UID), "others", others)
}

// Eligible drops pods that can never be the caller at now (finished, host
// network, terminating past their deletion deadline) and orders the rest
// best first: non-terminating before terminating, then running before not,
// newest first, then by UID so the order is stable.
func Eligible(pods []*kube.Pod, now time.Time) []*kube.Pod {
	out := make([]*kube.Pod, 0, len(pods))
	for _, p := range pods {
		if p == nil || p.Spec.HostNetwork || p.Status.Phase == kube.PodSucceeded || p.Status.Phase == kube.PodFailed {
			continue
		}
		if p.DeletionTimestamp != nil && p.DeletionTimestamp.Time.Before(now) {
			continue
		}
		out = append(out, p)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		// Terminating loses first: a pod that claims the IP of a terminating
		// one got it after that one's sandbox let it go, even while kubelet
		// still reports the newcomer Pending and the old one Running.
		if at, bt := a.DeletionTimestamp != nil, b.DeletionTimestamp != nil; at != bt {
			return !at
		}
		if ar, br := a.Status.Phase == kube.PodRunning, b.Status.Phase == kube.PodRunning; ar != br {
			return ar
		}
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return b.CreationTimestamp.Before(&a.CreationTimestamp)
		}
		return a.UID > b.UID
	})
	return out
}
