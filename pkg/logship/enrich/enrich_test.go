package enrich

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/nodekit/nodekit/pkg/kube"
)

func pod(uid, label string, annotations map[string]string) *kube.Pod {
	return &kube.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop", UID: types.UID("u" + uid), Labels: map[string]string{"app": label}, Annotations: annotations},
		Spec:       kube.PodSpec{NodeName: "node-a", Containers: []kube.Container{{Name: "app", Image: "nginx:1"}}},
	}
}

func TestDeletedPodKeptWhileFilesOpen(t *testing.T) {
	c := New(time.Minute)
	now := time.Unix(0, 0)
	c.now = func() time.Time { return now }
	p := pod("1", "web", nil)
	c.OnAdd(p, false)
	c.Acquire("u1")
	c.OnDelete(cache.DeletedFinalStateUnknown{Key: "shop/web-1", Obj: p})
	now = now.Add(time.Hour)
	c.gcLocked()
	m, ok := c.Get("u1", "", "")
	if !ok || m.Labels["app"] != "web" || m.Images["app"] != "nginx:1" || m.Host != "node-a" {
		t.Fatalf("metadata of a deleted pod with an open file: %+v %v", m, ok)
	}
	c.Release("u1")
	if _, ok := c.Get("u1", "", ""); ok {
		t.Fatal("metadata kept after the last file was released")
	}
}

func TestLookupByName(t *testing.T) {
	c := New(time.Minute)
	c.OnAdd(pod("1", "web", nil), false)
	if m, ok := c.Get("", "shop", "web-1"); !ok || m.UID != "u1" {
		t.Fatalf("by name: %+v %v", m, ok)
	}
}

func TestAnnotationAndVersion(t *testing.T) {
	c := New(time.Minute)
	c.OnAdd(pod("1", "web", nil), false)
	m1, _ := c.Get("u1", "", "")
	c.OnUpdate(nil, pod("1", "web", nil))
	m2, _ := c.Get("u1", "", "")
	if m1.Version != m2.Version {
		t.Fatal("version changed without a change")
	}
	c.OnUpdate(nil, pod("1", "web", map[string]string{Annotation: "false"}))
	m3, _ := c.Get("u1", "", "")
	if !m3.Disabled || m3.Version == m2.Version {
		t.Fatalf("annotation not seen: %+v", m3)
	}
}

func TestWaitWokenByInformer(t *testing.T) {
	c := New(time.Minute)
	got := make(chan Meta)
	go func() {
		m, _ := c.Wait(context.Background(), "u1", "", "", time.Minute)
		got <- m
	}()
	c.OnAdd(pod("1", "web", nil), false)
	if m := <-got; m.UID != "u1" {
		t.Fatalf("wait returned %+v", m)
	}
	if _, ok := c.Wait(context.Background(), "nope", "", "", time.Millisecond); ok {
		t.Fatal("wait for a missing pod succeeded")
	}
}

// TestRunForgetsDeletedPodsWithoutEvents: after pod churn the node may go
// quiet; deleted pods no file needs are forgotten once retain has passed,
// with no further event to trigger it.
func TestRunForgetsDeletedPodsWithoutEvents(t *testing.T) {
	c := New(time.Second)
	c.OnAdd(pod("1", "web", nil), false)
	c.OnDelete(pod("1", "web", nil))
	if _, ok := c.Get("u1", "", ""); !ok {
		t.Fatal("a pod deleted just now is forgotten before retain")
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := c.Get("u1", "", ""); !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a deleted pod's metadata is still held 10 s after its 1 s retention")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFinished: a pod is finished once deleted or Succeeded/Failed, and
// the hook hears of each pod once.
func TestFinished(t *testing.T) {
	withPhase := func(p *kube.Pod, phase kube.PodPhase) *kube.Pod {
		p = p.DeepCopy()
		p.Status.Phase = phase
		return p
	}
	tests := []struct {
		name   string
		events func(c *Cache, p *kube.Pod)
		want   bool
	}{
		{"running", func(c *Cache, p *kube.Pod) { c.OnUpdate(p, withPhase(p, kube.PodRunning)) }, false},
		{"deleted", func(c *Cache, p *kube.Pod) { c.OnDelete(p) }, true},
		{"deleted, final state unknown", func(c *Cache, p *kube.Pod) { c.OnDelete(cache.DeletedFinalStateUnknown{Key: "x", Obj: p}) }, true},
		{"succeeded", func(c *Cache, p *kube.Pod) { c.OnUpdate(p, withPhase(p, kube.PodSucceeded)) }, true},
		{"failed, then deleted", func(c *Cache, p *kube.Pod) {
			c.OnUpdate(p, withPhase(p, kube.PodFailed))
			c.OnUpdate(p, withPhase(p, kube.PodFailed))
			c.OnDelete(p)
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(time.Minute)
			var heard []string
			c.OnFinished(func(uid string) { heard = append(heard, uid) })
			p := pod("1", "web", nil)
			c.OnAdd(p, false)
			tt.events(c, p)
			if got := c.Finished("u1"); got != tt.want {
				t.Errorf("Finished = %v, want %v", got, tt.want)
			}
			if want := map[bool]int{true: 1, false: 0}[tt.want]; len(heard) != want {
				t.Errorf("the hook heard %v, want %d call(s)", heard, want)
			}
			if c.Finished("uid-unknown") {
				t.Error("an unknown pod is finished")
			}
		})
	}
}
