package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// stayUp prints what to try, keeps the web pod writing a line every two
// seconds (so `logship query -f` has something to follow) and waits for
// Ctrl-C.
func (d *demo) stayUp(ctx context.Context) {
	d.out.Section("The node stays up: try it (Ctrl-C tears everything down)")
	d.out.Printf("%s", d.instructions())
	for _, p := range d.pods {
		if p.name != "web" || p.log == nil {
			continue
		}
		d.writers.Go(func() {
			t := time.NewTicker(2 * time.Second)
			defer t.Stop()
			for n := webLines + 1; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if err := p.log.Print("stdout", webLine(n)); err != nil {
						d.out.Detail("shop/web stopped writing: %v", err)
						return
					}
				}
			}
		})
	}
	<-ctx.Done()
}

// instructions are the commands a newcomer can paste into another root
// shell while the demo runs.
func (d *demo) instructions() string {
	node := d.bed.Sandbox.Node()
	var pod, deniedPod string
	for _, p := range d.pods {
		switch {
		case p.name == "web":
			pod = p.pod.Net.Name()
		case p.wantDenied:
			deniedPod = p.pod.Net.Name()
		}
	}
	envFile := d.writeEnvFile()
	logship := filepath.Join(d.binDir, "logship")
	kubectl := d.bed.Kube.Kubectl()
	var b strings.Builder
	fmt.Fprintf(&b, `
  A shell in the pod shop/web (its network namespace):
    ip netns exec %[1]s bash
  Ask for credentials there, as the application would:
    ip netns exec %[1]s env -i PATH=/usr/bin:/bin HOME=/tmp AWS_REGION=us-east-1 aws configure export-credentials --format process
    ip netns exec %[1]s curl -s http://169.254.169.254%[2]s
  The restricted pod is refused:
    ip netns exec %[3]s curl -si http://169.254.169.254%[2]sbilling-invoicer

  Scrape the metrics (nodeexp, metaproxy, logship) from the node:
    ip netns exec %[4]s curl -s http://%[5]s/metrics | grep -E '^node_(load|memory_MemAvailable)'
    ip netns exec %[4]s curl -s http://%[6]s/metrics | grep ^metaproxy_
    ip netns exec %[4]s curl -s http://%[7]s/metrics | grep ^logship_

  Query the shipped logs (shop/web writes a line every 2s); first load the
  emulator's AWS settings into your shell:
    set -a; . %[8]s; set +a
    ip netns exec %[4]s %[9]s query --cluster %[10]s -n shop 'web*' -f
    ip netns exec %[4]s %[9]s query --cluster %[10]s -n billing invoicer -o json
    ip netns exec %[4]s %[9]s query --cluster %[10]s --insights 'stats count(*) by kubernetes.pod_name'
    ip netns exec %[4]s aws logs describe-log-streams --log-group-name %[14]s --endpoint-url http://%[15]s

  Look at the cluster and the interception rule:
    ip netns exec %[4]s %[11]s --kubeconfig %[12]s get pods -A -o wide
    ip netns exec %[4]s iptables -t nat -S

  Agents' logs: %[13]s/{metaproxy,logship,nodeexp}.log

`, pod, credsPath, deniedPod, node.Name(), nodeexpAddr, mpMetrics, lsMetrics, envFile, logship, clusterName,
		kubectl, d.bed.Kube.Kubeconfig(), d.work, logGroup, d.bed.AWSAddr())
	return b.String()
}

// writeEnvFile writes the agents' AWS settings (the emulator's endpoints) as
// a shell-sourceable file in the work dir and returns its path.
func (d *demo) writeEnvFile() string {
	path := filepath.Join(d.work, "aws.env")
	var b strings.Builder
	// The AWS CLI reads AWS_DEFAULT_REGION; the SDKs read AWS_REGION.
	for _, kv := range append(d.bed.AWSEnv(), "AWS_DEFAULT_REGION="+d.bed.AWS.Region()) {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "%s=%s\n", k, shellJoin([]string{v}))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		d.out.Detail("writing %s: %v", path, err)
	}
	return path
}
