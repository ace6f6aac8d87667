package kube

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// Source lists and watches the objects nodekit's informers cache.
type Source interface {
	Pods(fieldSelector fields.Selector) cache.ListerWatcher
	Namespaces() cache.ListerWatcher
}

// Client reads pods and namespaces from the API server. It is a REST client
// over a scheme holding this package's lean Pod and Namespace alone: the
// generated clientset registers every API group at start-up, which cost each
// agent about 8 MiB of memory for types it never reads, and k8s.io/api/core/v1
// alone links about 2.4 MB of code. It speaks JSON, as the lean types carry no
// protobuf code; the decoder skips the fields they do not name.
type Client struct {
	rest rest.Interface
}

var _ Source = (*Client)(nil)

// RESTConfig loads a kubeconfig file, or the in-cluster configuration when
// kubeconfig is empty.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("loading in-cluster configuration (pass --kubeconfig outside a cluster): %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig %s: %w", kubeconfig, err)
	}
	return cfg, nil
}

// NewClient builds a client for kubeconfig (empty means in-cluster),
// identifying itself as userAgent.
func NewClient(kubeconfig, userAgent string) (*Client, error) {
	cfg, err := RESTConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	if userAgent != "" {
		cfg.UserAgent = userAgent
	}
	return NewClientForConfig(cfg)
}

// NewClientForConfig builds a client from a REST configuration; cfg is copied.
func NewClientForConfig(cfg *rest.Config) (*Client, error) {
	scheme, err := newScheme()
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.APIPath = "/api"
	cfg.GroupVersion = &coreV1
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	cfg.ContentType = runtime.ContentTypeJSON
	cfg.AcceptContentTypes = runtime.ContentTypeJSON
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("building Kubernetes client for %s: %w", cfg.Host, err)
	}
	return &Client{rest: rc}, nil
}

// Pods lists and watches pods in every namespace matching fieldSelector.
func (c *Client) Pods(fieldSelector fields.Selector) cache.ListerWatcher {
	return cache.NewListWatchFromClient(c.rest, "pods", metav1.NamespaceAll, fieldSelector)
}

// Namespaces lists and watches every namespace.
func (c *Client) Namespaces() cache.ListerWatcher {
	return cache.NewListWatchFromClient(c.rest, "namespaces", metav1.NamespaceAll, fields.Everything())
}
