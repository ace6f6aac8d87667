package kube

import (
	"context"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Namespaces is an informer over all namespaces (their annotations carry
// policy such as iam.amazonaws.com/allowed-roles).
type Namespaces struct {
	logger   *slog.Logger
	factory  informers.SharedInformerFactory
	informer cache.SharedIndexInformer
}

// NewNamespaces builds the namespace informer. It starts nothing.
func NewNamespaces(client kubernetes.Interface, logger *slog.Logger) *Namespaces {
	factory := informers.NewSharedInformerFactory(client, 0)
	return &Namespaces{
		logger:   logger.With("informer", "namespaces"),
		factory:  factory,
		informer: factory.Core().V1().Namespaces().Informer(),
	}
}

// Run starts the informer and blocks until ctx ends.
func (n *Namespaces) Run(ctx context.Context) error {
	n.factory.Start(ctx.Done())
	<-ctx.Done()
	n.factory.Shutdown()
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
func (n *Namespaces) Get(name string) (*corev1.Namespace, bool) {
	obj, ok, err := n.informer.GetIndexer().GetByKey(name)
	if err != nil || !ok {
		return nil, false
	}
	ns, ok := obj.(*corev1.Namespace)
	return ns, ok
}
