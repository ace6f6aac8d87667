// Package kube holds nodekit's view of the Kubernetes API: a REST client from a
// kubeconfig or the in-cluster service account that decodes pods and
// namespaces into lean types holding only what the agents read, a node-scoped
// pod informer indexed by every pod IP and by UID, and a namespace informer.
//
// Agents read these caches; they never list from the API server on a request
// path, so shipping logs or serving credentials keeps working for pods the
// cache already knows while the API server is away.
package kube
