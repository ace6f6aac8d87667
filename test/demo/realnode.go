package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodekit/nodekit/test/kubeapi"
	"github.com/nodekit/nodekit/test/realnode"
)

// The story on the real node (demo --real-node): the same three agents,
// installed the way README.md's "Install from a local image" does it, on a
// kubelet with containerd and a bridge CNI (test/realnode). Pods are real
// pods of a Deployment; their credentials, shipped logs and metrics are
// read back and shown.

const (
	rnAppImage = "localhost/demo-apps:v1"
	rnGroup    = "/aws/containerinsights/my-cluster/application"
)

// realNodeDemo is one run on the real node.
type realNodeDemo struct {
	out     *narrator
	repo    string
	oneshot bool
	verbose bool

	node     *realnode.Node
	kit      *realnode.Nodekit
	failures []string
}

func (d *realNodeDemo) Run(ctx context.Context) int {
	d.out.Printf("nodekit demo on a real node: kubelet %s, containerd %s and a bridge CNI in network\n"+
		"namespaces of their own, nodekit installed from `make image` by README.md's install steps.\n"+
		"Nothing leaves the machine; what the kubelet changes on the host is put back at the end.\n",
		kubeapi.Version, realnode.ContainerdVersion)
	err := d.bringUp(ctx)
	if err == nil {
		d.show(ctx)
		if ctx.Err() == nil && !d.oneshot {
			d.stayUp(ctx)
		}
	}
	interrupted := errors.Is(context.Cause(ctx), errInterrupted)
	d.out.Section("Tearing down")
	if d.node != nil {
		done := d.out.Step("stopping the node and restoring the host")
		if terr := d.node.Close(); terr != nil {
			done(terr)
			return 1
		}
		done(nil)
	}
	switch {
	case err != nil && !interrupted:
		d.out.Printf("\ndemo FAILED: %v\n", err)
		return 1
	case interrupted && d.oneshot:
		d.out.Printf("\ndemo interrupted; everything it started was removed.\n")
		return 130
	case len(d.failures) > 0:
		d.out.Printf("\ndemo finished with %d failed step(s):\n", len(d.failures))
		for _, f := range d.failures {
			d.out.Printf("  - %s\n", f)
		}
		return 1
	}
	d.out.Printf("\ndemo finished in %v: every step worked and everything it started was removed.\n", time.Since(d.out.start).Round(time.Second))
	return 0
}

func (d *realNodeDemo) bringUp(ctx context.Context) (err error) {
	readme, err := os.ReadFile(filepath.Join(d.repo, "README.md"))
	if err != nil {
		return err
	}
	steps, err := realnode.ParseInstall(string(readme))
	if err != nil {
		return err
	}
	archive := filepath.Join(d.repo, steps.Archive)
	if _, err := os.Stat(archive); err != nil {
		return fmt.Errorf("%s: run `make demo-realnode`, which builds the image first (make image IMAGE_REF=%s)", archive, steps.ImageRef)
	}
	d.out.Section("The node")
	done := d.out.Step("starting etcd, kube-apiserver, the controllers, kube-proxy, containerd and the kubelet (the first run builds them: about 20 minutes)")
	logger := slog.New(slog.DiscardHandler)
	if d.verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	d.node, err = realnode.New(ctx, realnode.Config{Logger: logger})
	done(err)
	if err != nil {
		return err
	}
	d.out.Detail("node %s at %s; pods get addresses from %s on the %s bridge; daemon logs in %s", realnode.NodeName, realnode.NodeIP, realnode.PodCIDR, realnode.Bridge, d.node.LogDir())

	d.out.Section("Installing nodekit as README.md says")
	d.out.Block("   $ ", strings.Join([]string{
		"make image IMAGE_REF=" + steps.ImageRef,
		"ctr -n k8s.io images import " + steps.Archive,
		"kubectl " + strings.Join(steps.Apply, " "),
		"kubectl " + strings.Join(steps.Rollout, " "),
	}, "\n"))
	done = d.out.Step("importing the image and applying the kustomization")
	d.kit, err = d.node.InstallNodekit(ctx, realnode.InstallConfig{Steps: steps, ImageArchive: archive, DeployDir: filepath.Join(d.repo, "deploy")})
	done(err)
	if err != nil {
		return err
	}
	if pod, err := d.kit.Pod(ctx); err == nil {
		d.out.Detail("pod %s/%s: %d containers ready", pod.Namespace, pod.Name, len(pod.Status.ContainerStatuses))
	}

	d.out.Section("Application pods")
	done = d.out.Step("a Deployment of two pods with role shop-web, and a pod logging")
	err = d.addPods(ctx)
	done(err)
	return err
}

// addPods creates the story's pods from an image of busybox and this demo
// binary (its sdk-credentials mode is the application using the AWS SDK).
func (d *realNodeDemo) addPods(ctx context.Context) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	img, err := realnode.NewBusyboxImage(ctx, realnode.File{Path: "/usr/local/bin/demo", Source: self})
	if err != nil {
		return err
	}
	if err := d.node.ImportImage(ctx, rnAppImage, img); err != nil {
		return err
	}
	client := d.node.Kube.Client()
	if _, err := kubeapi.EnsureNamespace(ctx, client, "shop", map[string]string{"iam.amazonaws.com/allowed-roles": `["shop-*"]`}); err != nil {
		return err
	}
	for _, w := range []struct {
		name     string
		replicas int32
		role     string
		script   string
	}{
		{"web", 2, "shop-web", "sleep 3600000"},
		{"logger", 1, "", `i=0; while true; do echo "order $i accepted"; echo "order $i slow" >&2; i=$((i+1)); sleep 1; done`},
	} {
		labels := map[string]string{"app": w.name}
		ann := map[string]string{}
		if w.role != "" {
			ann["iam.amazonaws.com/role"] = w.role
		}
		dep := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: w.name},
			Spec: appsv1.DeploymentSpec{
				Replicas: &w.replicas,
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: ann},
					Spec: corev1.PodSpec{
						Containers: []corev1.Container{{Name: w.name, Image: rnAppImage, ImagePullPolicy: corev1.PullNever,
							Command: []string{"sh", "-c", w.script}}},
						TerminationGracePeriodSeconds: new(int64(1)),
					},
				},
			},
		}
		if _, err := client.AppsV1().Deployments("shop").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		pods, err := d.pods(ctx, "")
		if err == nil && len(pods) == 3 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the pods did not run within 2 minutes (%d running, %v)", len(pods), err)
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

// pods lists the running pods of app (all apps when empty) in shop.
func (d *realNodeDemo) pods(ctx context.Context, app string) ([]corev1.Pod, error) {
	sel := ""
	if app != "" {
		sel = "app=" + app
	}
	list, err := d.node.Kube.Client().CoreV1().Pods("shop").List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

func (d *realNodeDemo) fail(step string, err error) {
	d.failures = append(d.failures, fmt.Sprintf("%s: %v", step, err))
}

// show reads back what nodekit did for the pods.
func (d *realNodeDemo) show(ctx context.Context) {
	d.out.Section("Credentials: each pod its own role through 169.254.169.254")
	web, err := d.pods(ctx, "web")
	if err != nil {
		d.fail("listing the web pods", err)
	}
	for _, p := range web {
		done := d.out.Step(fmt.Sprintf("%s: the AWS SDK for Go's default chain (kubectl exec ... demo %s)", p.Name, sdkCredentialsCmd))
		out, err := d.node.Kubectl(ctx, "exec", "-n", "shop", p.Name, "--", "/usr/local/bin/demo", sdkCredentialsCmd)
		var c podCredentials
		if err == nil {
			err = json.Unmarshal([]byte(out[strings.IndexByte(out, '{'):]), &c)
		}
		if err == nil {
			arn, _, ok := d.node.AWS.RoleForAccessKey(c.AccessKeyID)
			switch {
			case !ok:
				err = fmt.Errorf("an access key the emulator never issued")
			case arn == d.node.AWS.NodeRoleArn():
				err = fmt.Errorf("the node's own role")
			default:
				d.out.Detail("access key %s of %s, expires %s", maskKey(c.AccessKeyID), arn, c.Expiration)
			}
		}
		done(err)
		if err != nil {
			d.fail("credentials of "+p.Name, err)
		}
	}

	d.out.Section("Logs: containerd's files, shipped to CloudWatch Logs")
	done := d.out.Step("waiting for the logger's lines in " + rnGroup)
	var n int
	var sample []string
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) && n < 10 {
		n, sample = 0, nil
		for _, stream := range d.node.AWS.LogStreams(rnGroup) {
			if !strings.HasPrefix(stream, "logger-") {
				continue
			}
			evs := d.node.AWS.Events(rnGroup, stream)
			n += len(evs)
			for _, e := range evs[max(0, len(evs)-2):] {
				sample = append(sample, oneLine(e.Message, 200))
			}
		}
		if sleepCtx(ctx, time.Second) != nil {
			break
		}
	}
	if n < 10 {
		done(fmt.Errorf("only %d lines shipped", n))
		d.fail("shipping logs", fmt.Errorf("only %d lines shipped", n))
	} else {
		done(nil)
		d.out.Detail("%d lines so far; the last records, in fluent-bit's shape:", n)
		d.out.Block("     ", strings.Join(sample, "\n"))
	}

	d.out.Section("Metrics: the agents on the node IP, as Prometheus scrapes them")
	for _, port := range []int{realnode.NodeexpPort, realnode.MetaproxyOpsPort, realnode.LogshipOpsPort} {
		done := d.out.Step(fmt.Sprintf("GET http://%s:%d/metrics", realnode.NodeIP, port))
		status, body, err := d.kit.Get(ctx, port, "/metrics")
		if err == nil && status != 200 {
			err = fmt.Errorf("HTTP %d", status)
		}
		done(err)
		if err != nil {
			d.fail("scraping port "+fmt.Sprint(port), err)
			continue
		}
		var picked []string
		for _, l := range strings.Split(body, "\n") {
			if (strings.HasPrefix(l, "nodeexp_pod_memory_working_set_bytes{namespace=\"shop\"") || strings.HasPrefix(l, "metaproxy_pods_not_intercepted") ||
				strings.HasPrefix(l, "logship_lag_seconds") || strings.HasPrefix(l, "node_load1 ")) && len(picked) < 4 {
				picked = append(picked, l)
			}
		}
		d.out.Block("     ", strings.Join(picked, "\n"))
	}
}

// stayUp prints how to look around and waits for Ctrl-C.
func (d *realNodeDemo) stayUp(ctx context.Context) {
	d.out.Section("The node stays up until Ctrl-C")
	kc := d.node.AdminKubeconfig()
	d.out.Printf("Look around from another shell (as root):\n\n")
	d.out.Block("  ", strings.Join([]string{
		fmt.Sprintf("nsenter --net=%s %s --kubeconfig=%s get pods -A -o wide", d.node.NodeNS.Path(), d.node.KubectlPath(), kc),
		fmt.Sprintf("nsenter --net=%s %s --kubeconfig=%s -n nodekit logs ds/nodekit -c metaproxy", d.node.NodeNS.Path(), d.node.KubectlPath(), kc),
		fmt.Sprintf("nsenter --net=%s curl -s http://%s:%d/metrics | grep ^nodeexp_pod_", d.node.NodeNS.Path(), realnode.NodeIP, realnode.NodeexpPort),
		fmt.Sprintf("nsenter --net=%s iptables -t nat -S NODEKIT-METAPROXY", d.node.NodeNS.Path()),
		"ls /var/log/pods /var/log/containers",
	}, "\n"))
	<-ctx.Done()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
