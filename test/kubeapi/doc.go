// Package kubeapi runs a real kube-apiserver, backed by a real etcd, for
// nodekit's end-to-end tests, demo and benchmarks.
//
// The kube-apiserver and kubectl binaries are built once from the Go module
// proxy by build.sh into a cache outside the repository (see Binaries). Start
// runs etcd and kube-apiserver as child processes, on loopback or inside a
// network namespace the caller provides, with RBAC, a static token file and
// service-account signing keys, and returns a client and a kubeconfig. Close
// stops every process and removes every file it made.
//
// Tests play the kubelet with the helpers in kubelet.go: create a pod bound
// to a node, report its IPs and phase, delete it.
package kubeapi
