// Package sandbox builds a Kubernetes node and its pods out of Linux network
// namespaces, for end-to-end tests, `make demo` and benchmarks.
//
// # Topology
//
// One sandbox is one node namespace (nk-<id>-node) and any number of pod
// namespaces (nk-<id>-pod<N>), wired the way Calico wires a node:
//
//	pod ns nk-<id>-podN                 node ns nk-<id>-node
//	eth0  100.96.0.N/32   <-- veth -->  caliN  (MAC ee:ee:ee:ee:ee:ee, proxy_arp=1)
//	default via 169.254.1.1 dev eth0    route 100.96.0.N/32 dev caliN
//	                                    eth0 (dummy, or ifb) 100.64.0.1/32 = the node IP
//	                                    lo 127.0.0.1, 169.254.169.254/32 (for the IMDS emulator)
//	                                    net.ipv4.ip_forward=1
//
// Nothing connects the node namespace to the root namespace and no namespace
// has a default route except the pods' one via the node, so traffic can never
// leave the machine. The root namespace is never modified: every link, address
// and route is created directly inside the sandbox's namespaces (the veth pair
// is created in the node namespace with its peer placed in the pod namespace).
//
// # Running code inside a namespace
//
// [Namespace.Do] runs a function on a locked OS thread switched (setns) into
// the namespace; sockets keep the namespace they were created in, so
// [Namespace.Listen], [Namespace.DialContext] and [Namespace.HTTPClient] let an
// in-process server or client live in the node or a pod. [Namespace.Command]
// runs a program through `ip netns exec`, which also remounts /sys for the
// namespace. Every process found in a sandbox namespace is killed on Close.
//
// Programs forked from inside Do inherit the namespace, so iptables rules
// (github.com/coreos/go-iptables runs the iptables binary) are installed in
// the node with:
//
//	err := sb.Node().Do(func() error {
//		ipt, err := iptables.New()
//		if err != nil {
//			return err
//		}
//		return ipt.AppendUnique("nat", "PREROUTING", rule...)
//	})
//
// # Cleanup
//
// [Sandbox.Close] removes every namespace, veth and temporary directory it
// created and kills the processes inside. A run that never reaches Close (a
// SIGKILLed test binary, a `go test -timeout` panic) is cleaned by the next
// [New] or [CleanStale]: each sandbox holds an flock on its state file in
// /run/nodekit-sandbox/ for its whole life, so a state file nobody holds a
// lock on, or a nk-<id>-* namespace without a state file, belongs to a dead
// run.
//
// Everything here needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN); [Start] fails
// the test with a clear message otherwise.
package sandbox
