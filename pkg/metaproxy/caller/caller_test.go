package caller

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/pkg/kube"
)

// fakePods is an in-memory informer index.
type fakePods struct {
	mu   sync.Mutex
	byIP map[string][]*kube.Pod
	// looked is signalled on every ByIP call so tests can wait for a lookup.
	looked chan string
}

func (f *fakePods) ByIP(ip string) []*kube.Pod {
	f.mu.Lock()
	pods := f.byIP[ip]
	f.mu.Unlock()
	if f.looked != nil {
		f.looked <- ip
	}
	return pods
}

func (f *fakePods) set(ip string, pods ...*kube.Pod) {
	f.mu.Lock()
	f.byIP[ip] = pods
	f.mu.Unlock()
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func mkpod(uid string, phase kube.PodPhase, age time.Duration, terminating bool) *kube.Pod {
	p := &kube.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: uid, UID: types.UID(uid), CreationTimestamp: metav1.NewTime(t0.Add(-age))},
		Status:     kube.PodStatus{Phase: phase},
	}
	if terminating {
		deadline := metav1.NewTime(t0.Add(30 * time.Second)) // a 30 s grace period
		p.DeletionTimestamp = &deadline
	}
	return p
}

func TestEligible(t *testing.T) {
	running := kube.PodRunning
	tests := []struct {
		name string
		pods []*kube.Pod
		want []string
	}{
		{name: "none", want: []string{}},
		{name: "finished never match", pods: []*kube.Pod{mkpod("done", kube.PodSucceeded, 0, false), mkpod("failed", kube.PodFailed, 0, false)}, want: []string{}},
		{name: "host network never matches", pods: []*kube.Pod{func() *kube.Pod { p := mkpod("host", running, 0, false); p.Spec.HostNetwork = true; return p }()}, want: []string{}},
		{name: "running beats pending even if older", pods: []*kube.Pod{mkpod("pending", kube.PodPending, 0, false), mkpod("run", running, time.Hour, false)}, want: []string{"run", "pending"}},
		{name: "non-terminating beats terminating", pods: []*kube.Pod{mkpod("old-term", running, 0, true), mkpod("new", running, time.Hour, false)}, want: []string{"new", "old-term"}},
		// The terminating pod's sandbox released the IP before the newcomer
		// got it; kubelet reports the newcomer Running only after its
		// containers start, and they may ask for credentials before that.
		{name: "pending newcomer beats the terminating pod it inherited the IP from", pods: []*kube.Pod{mkpod("old-term", running, time.Hour, true), mkpod("new", kube.PodPending, 0, false)}, want: []string{"new", "old-term"}},
		{name: "newest wins", pods: []*kube.Pod{mkpod("old", running, time.Hour, false), mkpod("new", running, time.Minute, false)}, want: []string{"new", "old"}},
		{name: "terminating alone still matches within its grace period", pods: []*kube.Pod{mkpod("term", running, 0, true)}, want: []string{"term"}},
		{name: "terminating past its deadline never matches", pods: []*kube.Pod{func() *kube.Pod {
			p := mkpod("dead", running, 0, true)
			p.DeletionTimestamp = &metav1.Time{Time: t0.Add(-time.Second)}
			return p
		}()}, want: []string{}},
		{name: "tie broken by uid", pods: []*kube.Pod{mkpod("a", running, 0, false), mkpod("b", running, 0, false)}, want: []string{"b", "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Eligible(tt.pods, t0)
			uids := make([]string, 0, len(got))
			for _, p := range got {
				uids = append(uids, string(p.UID))
			}
			if len(uids) != len(tt.want) {
				t.Fatalf("Eligible = %v, want %v", uids, tt.want)
			}
			for i := range uids {
				if uids[i] != tt.want[i] {
					t.Fatalf("Eligible = %v, want %v", uids, tt.want)
				}
			}
		})
	}
}

func TestResolveKnown(t *testing.T) {
	pods := &fakePods{byIP: map[string][]*kube.Pod{}}
	pods.set("10.0.0.1", mkpod("old", kube.PodRunning, time.Hour, true), mkpod("new", kube.PodRunning, 0, false))
	r := New(pods, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	p, err := r.Resolve(context.Background(), "10.0.0.1")
	if err != nil || p.UID != "new" {
		t.Fatalf("Resolve = %v, %v; want pod new", p, err)
	}
}

func TestResolveWaitsForInformerEvent(t *testing.T) {
	pods := &fakePods{byIP: map[string][]*kube.Pod{}, looked: make(chan string, 10)}
	r := New(pods, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	type result struct {
		p   *kube.Pod
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := r.Resolve(context.Background(), "10.0.0.2")
		done <- result{p, err}
	}()
	<-pods.looked // the first lookup found nothing; the resolver now waits
	// An unrelated event wakes it, it looks again and keeps waiting.
	r.EventHandler().OnAdd(nil, false)
	<-pods.looked
	pods.set("10.0.0.2", mkpod("late", kube.PodRunning, 0, false))
	r.EventHandler().OnUpdate(nil, nil)
	<-pods.looked
	res := <-done
	if res.err != nil || res.p.UID != "late" {
		t.Fatalf("Resolve = %v, %v; want pod late", res.p, res.err)
	}
}

func TestResolveGivesUp(t *testing.T) {
	pods := &fakePods{byIP: map[string][]*kube.Pod{}}
	pods.set("10.0.0.3", mkpod("finished", kube.PodSucceeded, 0, false))
	r := New(pods, time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := r.Resolve(context.Background(), "10.0.0.3"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("Resolve error = %v, want ErrUnknown", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r = New(pods, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := r.Resolve(ctx, "10.0.0.3"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Resolve error = %v, want context.Canceled", err)
	}
}

// A request whose only claimant is terminating waits for a newer claimant:
// the CNI may have given the dying pod's IP to a new pod the informer has
// not heard of yet, which must never get the old pod's role.
func TestResolvePrefersANewcomerToATerminatingPod(t *testing.T) {
	pods := &fakePods{byIP: map[string][]*kube.Pod{}, looked: make(chan string, 10)}
	pods.set("10.0.0.4", mkpod("old", kube.PodRunning, time.Hour, true))
	r := New(pods, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.now = func() time.Time { return t0 }
	done := make(chan *kube.Pod, 1)
	go func() {
		p, _ := r.Resolve(context.Background(), "10.0.0.4")
		done <- p
	}()
	<-pods.looked // found only the terminating pod: it waits
	pods.set("10.0.0.4", mkpod("old", kube.PodRunning, time.Hour, true), mkpod("new", kube.PodPending, 0, false))
	r.EventHandler().OnAdd(nil, false)
	<-pods.looked
	if p := <-done; p == nil || p.UID != "new" {
		t.Fatalf("Resolve = %v; want the newcomer", p)
	}

	// With no newcomer, a terminating pod within its grace period is served
	// after the wait; past its deadline it is not.
	pods.set("10.0.0.5", mkpod("dying", kube.PodRunning, time.Hour, true))
	r = New(pods, time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.now = func() time.Time { return t0 }
	pods.looked = nil
	if p, err := r.Resolve(context.Background(), "10.0.0.5"); err != nil || p.UID != "dying" {
		t.Fatalf("Resolve within the grace period = %v, %v; want the terminating pod", p, err)
	}
	r.now = func() time.Time { return t0.Add(time.Minute) }
	if _, err := r.Resolve(context.Background(), "10.0.0.5"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("Resolve past the deadline: %v; want ErrUnknown", err)
	}
}
