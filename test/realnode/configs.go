package realnode

import (
	"bytes"
	"fmt"
	"os"
	"text/template"
)

// The node's configuration files, after ../../shared/REALNODE.md sections 4
// and 9. Every path a component would default to outside Dir is moved into
// it, except those real nodes have and the manifest's hostPaths expect
// (/var/log/pods, /var/log/containers, the kubepods cgroups), which
// hoststate.go records and restores.

// containerdConfig: version 4 is containerd 2.4's own format.
// restrict_oom_score_adj is required here: without CAP_SYS_RESOURCE in the
// bounding set no sandbox may lower its oom_score_adj, and runc fails with
// "can't get final child's PID from pipe: EOF".
var containerdConfig = template.Must(template.New("containerd.toml").Parse(`version = 4
root = "{{.Dir}}/containerd/root"
state = "{{.Dir}}/containerd/state"
imports = []
[plugins]
  [plugins.'io.containerd.server.v1.grpc']
    address = "{{.Dir}}/containerd/containerd.sock"
  [plugins.'io.containerd.server.v1.ttrpc']
    address = "{{.Dir}}/containerd/containerd.sock.ttrpc"
  [plugins.'io.containerd.shim.v1.manager']
    socket_dir = "{{.Dir}}/containerd/s"
  [plugins.'io.containerd.internal.v1.opt']
    path = "{{.Dir}}/containerd/opt"
  [plugins.'io.containerd.image-verifier.v1.bindir']
    bin_dir = "{{.Dir}}/containerd/opt/image-verifier/bin"
  [plugins.'io.containerd.nri.v1.nri']
    disable = true
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = "overlayfs"
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = "{{.PauseImage}}"
  [plugins.'io.containerd.cri.v1.runtime']
    cdi_spec_dirs = []
    netns_mounts_under_state_dir = true
    restrict_oom_score_adj = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = "runc"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = "/usr/sbin/runc"
          Root = "{{.Dir}}/containerd/runc"
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ["/usr/lib/cni"]
      conf_dir = "{{.Dir}}/cni/net.d"
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = "127.0.0.1"
`))

// cniConfig is a bridge network as kubeadm clusters with the reference
// plugins have it: cni0 with the pods' gateway, host-local addresses.
var cniConfig = template.Must(template.New("cni").Parse(`{"cniVersion":"1.0.0","name":"nodekit-realnode","plugins":[
 {"type":"bridge","bridge":"{{.Bridge}}","isGateway":true,"ipMasq":false,"hairpinMode":true,
  "ipam":{"type":"host-local","dataDir":"{{.Dir}}/cni/ipam",
          "ranges":[[{"subnet":"{{.PodCIDR}}"{{with .PodRange}},"rangeStart":"{{.Start}}","rangeEnd":"{{.End}}"{{end}}}]],"routes":[{"dst":"0.0.0.0/0"}]}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}
`))

// kubeletConfig: the cgroupfs driver (no systemd here) on cgroup v1
// (failCgroupV1 false), oomScoreAdj 0 (no CAP_SYS_RESOURCE), no image
// garbage collection (the imported images cannot be pulled again), the
// default podLogsDir and cgroup root as real nodes have them.
var kubeletConfig = template.Must(template.New("kubelet.yaml").Parse(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://{{.Dir}}/containerd/containerd.sock
imageServiceEndpoint: unix://{{.Dir}}/containerd/containerd.sock
address: {{.NodeIP}}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: {{.CAFile}}}
authorization: {mode: Webhook}
containerLogMaxSize: {{.LogMaxSize}}
containerLogMaxFiles: {{.LogMaxFiles}}
containerLogMonitorInterval: {{.LogMonitorInterval}}
resolvConf: {{.Dir}}/etc/resolv.conf
clusterDomain: cluster.local
protectKernelDefaults: false
oomScoreAdj: 0
volumePluginDir: {{.Dir}}/kubelet/volume-plugins
evictionHard: {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
`))

// proxyConfig: iptables mode; the conntrack settings are zero so kube-proxy
// leaves the kernel's (global) conntrack sysctls alone.
var proxyConfig = template.Must(template.New("kube-proxy.yaml").Parse(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: {{.Kubeconfig}}
mode: iptables
clusterCIDR: {{.PodCIDR}}
hostnameOverride: {{.NodeName}}
bindAddress: 0.0.0.0
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`))

func writeTemplate(path string, t *template.Template, data any) error {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return fmt.Errorf("rendering %s: %w", t.Name(), err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
