package kube

import (
	"context"
	"fmt"
	"log/slog"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

const (
	byIPIndex  = "byPodIP"
	byUIDIndex = "byUID"
)

// Pods is an informer over the pods scheduled to one node, indexed by every
// IP in status.podIPs (host-network pods excluded: their IP is the node's) and
// by UID. Build it with NewPods, start it with Run; the lookups are safe for
// concurrent use and read only the cache.
type Pods struct {
	logger   *slog.Logger
	nodeName string
	informer cache.SharedIndexInformer
}

// NewPods builds the node-scoped pod informer. It starts nothing.
func NewPods(src Source, nodeName string, logger *slog.Logger) (*Pods, error) {
	if nodeName == "" {
		return nil, fmt.Errorf("pod informer needs a node name")
	}
	lw := src.Pods(fields.OneTermEqualSelector("spec.nodeName", nodeName))
	inf := cache.NewSharedIndexInformer(lw, &Pod{}, 0, cache.Indexers{})
	// Drop what nodekit never reads, so a node with many pods stays cheap.
	if err := inf.SetTransform(trimPod); err != nil {
		return nil, fmt.Errorf("setting pod transform: %w", err)
	}
	if err := inf.AddIndexers(cache.Indexers{byIPIndex: podIPs, byUIDIndex: podUID}); err != nil {
		return nil, fmt.Errorf("adding pod indexers: %w", err)
	}
	p := &Pods{
		logger:   logger.With("informer", "pods", "node", nodeName),
		nodeName: nodeName,
		informer: inf,
	}
	return p, nil
}

// Run starts the informer and blocks until ctx ends.
func (p *Pods) Run(ctx context.Context) error {
	p.logger.Debug("starting pod informer")
	p.informer.RunWithContext(ctx)
	return nil
}

// WaitForSync blocks until the informer's first list is in the cache, or ctx ends.
func (p *Pods) WaitForSync(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), p.informer.HasSynced) {
		return fmt.Errorf("waiting for pod informer of node %s to sync: %w", p.nodeName, context.Cause(ctx))
	}
	return nil
}

// HasSynced reports whether the first list has been loaded.
func (p *Pods) HasSynced() bool { return p.informer.HasSynced() }

// AddEventHandler registers h for pod events; call before Run.
func (p *Pods) AddEventHandler(h cache.ResourceEventHandler) error {
	if _, err := p.informer.AddEventHandler(h); err != nil {
		return fmt.Errorf("adding pod event handler: %w", err)
	}
	return nil
}

// ByIP returns every cached pod that lists ip in status.podIPs (or status.podIP).
// The pods are shared with the cache: do not modify them.
func (p *Pods) ByIP(ip string) []*Pod {
	return p.byIndex(byIPIndex, ip)
}

// ByUID returns the cached pod with this UID.
func (p *Pods) ByUID(uid types.UID) (*Pod, bool) {
	pods := p.byIndex(byUIDIndex, string(uid))
	if len(pods) == 0 {
		return nil, false
	}
	return pods[0], true
}

// Get returns the cached pod namespace/name.
func (p *Pods) Get(namespace, name string) (*Pod, bool) {
	obj, ok, err := p.informer.GetIndexer().GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return nil, false
	}
	pod, ok := obj.(*Pod)
	return pod, ok
}

// List returns every cached pod.
func (p *Pods) List() []*Pod {
	objs := p.informer.GetIndexer().List()
	pods := make([]*Pod, 0, len(objs))
	for _, o := range objs {
		if pod, ok := o.(*Pod); ok {
			pods = append(pods, pod)
		}
	}
	return pods
}

func (p *Pods) byIndex(index, key string) []*Pod {
	objs, err := p.informer.GetIndexer().ByIndex(index, key)
	if err != nil {
		p.logger.Error("reading pod index", "index", index, "err", err)
		return nil
	}
	pods := make([]*Pod, 0, len(objs))
	for _, o := range objs {
		if pod, ok := o.(*Pod); ok {
			pods = append(pods, pod)
		}
	}
	return pods
}

func podIPs(obj any) ([]string, error) {
	pod, ok := obj.(*Pod)
	if !ok || pod.Spec.HostNetwork {
		return nil, nil
	}
	var ips []string
	seen := map[string]bool{}
	add := func(ip string) {
		if ip != "" && !seen[ip] {
			seen[ip] = true
			ips = append(ips, ip)
		}
	}
	for _, pip := range pod.Status.PodIPs {
		add(pip.IP)
	}
	add(pod.Status.PodIP)
	return ips, nil
}

func podUID(obj any) ([]string, error) {
	pod, ok := obj.(*Pod)
	if !ok {
		return nil, nil
	}
	return []string{string(pod.UID)}, nil
}

// trimPod drops managed fields, which can outweigh the rest of a pod; the
// lean Pod type already leaves out everything else nodekit never reads.
func trimPod(obj any) (any, error) {
	if pod, ok := obj.(*Pod); ok {
		pod.ManagedFields = nil
	}
	return obj, nil
}
