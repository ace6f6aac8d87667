package kube

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
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
// over a scheme holding core/v1 alone: the generated clientset registers every
// API group at start-up, which costs each agent about 8 MiB of memory for
// types it never reads. It speaks protobuf, like the kubelet, for cheaper
// decoding of large pod lists.
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
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("registering core/v1 types: %w", err)
	}
	cfg = rest.CopyConfig(cfg)
	cfg.APIPath = "/api"
	cfg.GroupVersion = &corev1.SchemeGroupVersion
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
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
