package kube

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// clientsetSource feeds the informers from a (fake) clientset in unit tests;
// the end-to-end tests use the real Client against a real API server. The
// clientset speaks core/v1 types, so every object is carried over into the
// lean types through its JSON, as the real Client decodes them. The fake
// cannot stream watch-lists, so each ListWatch is wrapped with
// ToListWatcherWithWatchListSemantics to let the reflector ask, as the
// generated informers do.
type clientsetSource struct{ cs kubernetes.Interface }

func (s clientsetSource) Pods(sel fields.Selector) cache.ListerWatcher {
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel.String()
			l, err := s.cs.CoreV1().Pods("").List(ctx, o)
			if err != nil {
				return nil, err
			}
			return viaJSON(l, &PodList{})
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel.String()
			w, err := s.cs.CoreV1().Pods("").Watch(ctx, o)
			if err != nil {
				return nil, err
			}
			return lean(w, func() runtime.Object { return &Pod{} }), nil
		},
	}, s.cs)
}

func (s clientsetSource) Namespaces() cache.ListerWatcher {
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			l, err := s.cs.CoreV1().Namespaces().List(ctx, o)
			if err != nil {
				return nil, err
			}
			return viaJSON(l, &NamespaceList{})
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			w, err := s.cs.CoreV1().Namespaces().Watch(ctx, o)
			if err != nil {
				return nil, err
			}
			return lean(w, func() runtime.Object { return &Namespace{} }), nil
		},
	}, s.cs)
}

// viaJSON decodes from's JSON into into.
func viaJSON[T runtime.Object](from any, into T) (T, error) {
	b, err := json.Marshal(from)
	if err != nil {
		return into, err
	}
	if err := json.Unmarshal(b, into); err != nil {
		return into, fmt.Errorf("decoding %T into %T: %w", from, into, err)
	}
	return into, nil
}

// lean carries a core/v1 watch's events over into the lean types; bookmarks
// and errors pass as they are.
func lean(w watch.Interface, newObj func() runtime.Object) watch.Interface {
	return watch.Filter(w, func(e watch.Event) (watch.Event, bool) {
		switch e.Object.(type) {
		case *corev1.Pod, *corev1.Namespace:
			obj, err := viaJSON(e.Object, newObj())
			if err != nil {
				return watch.Event{Type: watch.Error, Object: &metav1.Status{Message: err.Error()}}, true
			}
			e.Object = obj
		}
		return e, true
	})
}
