package kube

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// clientsetSource feeds the informers from a (fake) clientset in unit tests;
// the end-to-end tests use the real Client against a real API server. The
// fake cannot stream watch-lists, so each ListWatch is wrapped with
// ToListWatcherWithWatchListSemantics to let the reflector ask, as the
// generated informers do.
type clientsetSource struct{ cs kubernetes.Interface }

func (s clientsetSource) Pods(sel fields.Selector) cache.ListerWatcher {
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel.String()
			return s.cs.CoreV1().Pods("").List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel.String()
			return s.cs.CoreV1().Pods("").Watch(ctx, o)
		},
	}, s.cs)
}

func (s clientsetSource) Namespaces() cache.ListerWatcher {
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return s.cs.CoreV1().Namespaces().List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return s.cs.CoreV1().Namespaces().Watch(ctx, o)
		},
	}, s.cs)
}
