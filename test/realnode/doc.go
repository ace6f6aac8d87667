// Package realnode runs a real Kubernetes node on this machine, for the tests,
// benchmarks and demo that must see nodekit as its users run it: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy and the
// kubelet (built from the Go module proxy by test/kubeapi), containerd with its
// runc shim (built by build-containerd.sh), Debian's runc and CNI plugins, and a
// bridge CNI network giving pods real IPs. ../../shared/REALNODE.md is the
// recipe it follows.
//
// Everything runs in two network namespaces of its own, neither with a route
// off the machine:
//
//	nkrn-node  the node: 10.99.0.2 on eth0, the cni0 bridge and the pods'
//	           veths behind it (10.244.0.0/24), every daemon, hostNetwork pods
//	nkrn-ec2   what EC2 puts behind the node's uplink: the AWS emulator
//	           (test/awsemu) as the instance metadata service at
//	           169.254.169.254:80 and as STS and CloudWatch Logs at 10.99.0.1:4566
//
// Pods reach the metadata address the way they do on EC2: routed by the node
// out of eth0. So a pod whose traffic nodekit's metaproxy does not intercept
// meets the "real" metadata service and the node's own role, which is what the
// tests must prove never happens.
//
// A kubelet changes host-global state that no flag moves: kernel settings,
// /var/log/pods and /var/log/containers, /var/lib/kubelet/device-plugins,
// libcni's cache in /var/lib/cni, cgroups under kubepods, the propagation of
// the root mount. New records each before the node starts (in a state file
// under Dir) and Close puts it back; New also cleans what a run killed with
// SIGKILL left, using that run's record. One node runs per machine at a time
// (the kubelet's device-plugin socket has a fixed path); a second New fails
// clearly while the first lives.
package realnode
