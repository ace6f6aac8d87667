package kube

import (
	"context"
	"fmt"
	"log/slog"

	"k8s.io/client-go/tools/cache"
)

// Namespaces is an informer over all namespaces (their annotations carry
// policy such as iam.amazonaws.com/allowed-roles).
type Namespaces struct {
	logger   *slog.Logger
	informer cache.SharedIndexInformer
}

// NewNamespaces builds the namespace informer. It starts nothing.
func NewNamespaces(src Source, logger *slog.Logger) *Namespaces {
	return &Namespaces{
		logger:   logger.With("informer", "namespaces"),
		informer: cache.NewSharedIndexInformer(src.Namespaces(), &Namespace{}, 0, cache.Indexers{}),
	}
}

// Run starts the informer and blocks until ctx ends.
func (n *Namespaces) Run(ctx context.Context) error {
	n.informer.RunWithContext(ctx)
	return nil
}

// WaitForSync blocks until the first list is in the cache, or ctx ends.
func (n *Namespaces) WaitForSync(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), n.informer.HasSynced) {
		return fmt.Errorf("waiting for namespace informer to sync: %w", context.Cause(ctx))
	}
	return nil
}

// HasSynced reports whether the first list has been loaded.
func (n *Namespaces) HasSynced() bool { return n.informer.HasSynced() }

// Get returns the cached namespace. Do not modify it.
func (n *Namespaces) Get(name string) (*Namespace, bool) {
	obj, ok, err := n.informer.GetIndexer().GetByKey(name)
	if err != nil || !ok {
		return nil, false
	}
	ns, ok := obj.(*Namespace)
	return ns, ok
}
