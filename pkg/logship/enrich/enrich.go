// Package enrich keeps the pod metadata logship adds to records: pod id,
// labels, container images, node, and the nodekit.io/logship opt-out
// annotation.
//
// A Cache is fed by the node-scoped pod informer (it is a
// cache.ResourceEventHandler) and keeps a deleted pod's metadata while any
// of its files is still being read, so the last lines of a deleted pod keep
// their labels. Lookups never call the API server.
package enrich

import (
	"context"
	"maps"
	"sync"
	"time"

	"k8s.io/client-go/tools/cache"

	"github.com/nodekit/nodekit/pkg/kube"
)

// Annotation turns shipping off for a pod when set to "false".
const Annotation = "nodekit.io/logship"

// Meta is what records carry about a pod.
// It is saved with a stream's checkpoint (JSON), so the fields keep their
// names.
type Meta struct {
	UID       string            `json:"uid"`
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Host      string            `json:"host,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	// Images maps container name to image.
	Images map[string]string `json:"images,omitempty"`
	// Disabled is true when the pod opted out with the annotation.
	Disabled bool `json:"disabled,omitempty"`
	// Version changes whenever the metadata does, within one Cache.
	Version uint64 `json:"-"`
}

type entry struct {
	meta    Meta
	deleted time.Time // zero while the pod exists
	refs    int       // files of the pod being read
	// done: the pod's phase is Succeeded or Failed; none of its
	// containers runs again.
	done bool
}

// finished says the pod writes no more logs: deleted, or done.
func (e *entry) finished() bool { return e.done || !e.deleted.IsZero() }

// Cache holds metadata by pod UID; it is safe for concurrent use.
type Cache struct {
	// retain is how long a deleted pod's metadata is kept when no file of
	// it is open (its files may still be discovered a little later).
	retain time.Duration
	now    func() time.Time

	mu      sync.Mutex
	byUID   map[string]*entry
	byName  map[string]string // namespace/name -> uid
	version uint64
	changed chan struct{} // closed and replaced on every change
	// onFinished is called, without mu held, when a pod is deleted or
	// done.
	onFinished func(uid string)
}

var _ cache.ResourceEventHandler = (*Cache)(nil)

// New returns an empty cache.
func New(retain time.Duration) *Cache {
	return &Cache{retain: retain, now: time.Now, byUID: map[string]*entry{}, byName: map[string]string{}, changed: make(chan struct{})}
}

func metaOf(pod *kube.Pod) Meta {
	images := make(map[string]string, len(pod.Spec.Containers)+len(pod.Spec.InitContainers))
	for _, c := range pod.Spec.InitContainers {
		images[c.Name] = c.Image
	}
	for _, c := range pod.Spec.Containers {
		images[c.Name] = c.Image
	}
	return Meta{
		UID: string(pod.UID), Namespace: pod.Namespace, Name: pod.Name, Host: pod.Spec.NodeName,
		Labels: maps.Clone(pod.Labels), Images: images, Disabled: pod.Annotations[Annotation] == "false",
	}
}

// OnFinished has fn called with a pod's UID when it is deleted or its
// phase becomes Succeeded or Failed: its containers write no more. fn must
// not call back into the Cache; it replaces the fn set before.
func (c *Cache) OnFinished(fn func(uid string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onFinished = fn
}

// Finished reports whether the pod with uid is known to write no more
// logs: deleted, or Succeeded or Failed.
func (c *Cache) Finished(uid string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byUID[uid]
	return ok && e.finished()
}

// OnAdd implements cache.ResourceEventHandler.
func (c *Cache) OnAdd(obj any, _ bool) { c.set(obj) }

// OnUpdate implements cache.ResourceEventHandler.
func (c *Cache) OnUpdate(_, obj any) { c.set(obj) }

// OnDelete implements cache.ResourceEventHandler: the metadata stays while
// the pod's files are read.
func (c *Cache) OnDelete(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	pod, ok := obj.(*kube.Pod)
	if !ok {
		return
	}
	c.mu.Lock()
	e, ok := c.byUID[string(pod.UID)]
	tell := ok && !e.finished()
	if ok {
		e.deleted = c.now()
	}
	c.gcLocked()
	fn := c.onFinished
	c.mu.Unlock()
	if tell && fn != nil {
		fn(string(pod.UID))
	}
}

func (c *Cache) set(obj any) {
	pod, ok := obj.(*kube.Pod)
	if !ok {
		return
	}
	m := metaOf(pod)
	done := pod.Status.Phase == kube.PodSucceeded || pod.Status.Phase == kube.PodFailed
	c.mu.Lock()
	e, ok := c.byUID[m.UID]
	if !ok {
		e = &entry{}
		c.byUID[m.UID] = e
	}
	tell := done && !e.finished()
	e.done = e.done || done
	fn := c.onFinished
	c.setLocked(e, ok, m)
	c.mu.Unlock()
	if tell && fn != nil {
		fn(m.UID)
	}
}

// setLocked stores m as e's metadata, found says e was cached before.
func (c *Cache) setLocked(e *entry, found bool, m Meta) {
	if found && sameMeta(e.meta, m) {
		return
	}
	c.version++
	m.Version = c.version
	e.meta = m
	e.deleted = time.Time{}
	c.byName[m.Namespace+"/"+m.Name] = m.UID
	close(c.changed)
	c.changed = make(chan struct{})
}

func sameMeta(a, b Meta) bool {
	return a.Host == b.Host && a.Disabled == b.Disabled && maps.Equal(a.Labels, b.Labels) && maps.Equal(a.Images, b.Images)
}

// Get returns the metadata of the pod with uid, or, when uid is empty (a
// log path outside kubelet's layout), of the pod namespace/name.
func (c *Cache) Get(uid, namespace, name string) (Meta, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.getLocked(uid, namespace, name)
}

func (c *Cache) getLocked(uid, namespace, name string) (Meta, bool) {
	if uid == "" {
		uid = c.byName[namespace+"/"+name]
	}
	e, ok := c.byUID[uid]
	if !ok {
		return Meta{}, false
	}
	return e.meta, true
}

// Wait returns the pod's metadata, waiting up to timeout for the informer
// to report the pod (a container can start logging before the informer
// hears of its pod).
func (c *Cache) Wait(ctx context.Context, uid, namespace, name string, timeout time.Duration) (Meta, bool) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		c.mu.Lock()
		m, ok := c.getLocked(uid, namespace, name)
		changed := c.changed
		c.mu.Unlock()
		if ok {
			return m, true
		}
		select {
		case <-changed:
		case <-t.C:
			return Meta{}, false
		case <-ctx.Done():
			return Meta{}, false
		}
	}
}

// Acquire marks a file of the pod as being read: its metadata outlives the
// pod until Release.
func (c *Cache) Acquire(uid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byUID[uid]; ok {
		e.refs++
	}
}

// Release undoes Acquire once the file is drained.
func (c *Cache) Release(uid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byUID[uid]; ok && e.refs > 0 {
		e.refs--
	}
	c.gcLocked()
}

// Run forgets deleted pods' metadata once no file needs it and retain has
// passed, also when no pod event or released file comes to trigger it
// (after a burst of pod churn the node may go quiet), until ctx ends.
func (c *Cache) Run(ctx context.Context) {
	t := time.NewTicker(max(c.retain/4, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.mu.Lock()
			c.gcLocked()
			c.mu.Unlock()
		}
	}
}

// gcLocked forgets deleted pods no file needs any more.
func (c *Cache) gcLocked() {
	now := c.now()
	for uid, e := range c.byUID {
		if !e.deleted.IsZero() && e.refs == 0 && now.Sub(e.deleted) >= c.retain {
			delete(c.byUID, uid)
			if c.byName[e.meta.Namespace+"/"+e.meta.Name] == uid {
				delete(c.byName, e.meta.Namespace+"/"+e.meta.Name)
			}
		}
	}
}
