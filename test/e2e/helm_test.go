//go:build e2e

package e2e

// End-to-end test of deploy/helm/nodekit (issue 15) on the test bed's real
// kube-apiserver: `helm install` as a platform team runs it (Helm v4, its
// default server-side apply, --create-namespace), the objects it creates,
// an upgrade that turns nodeexp off, the render applying with server-side
// validation, and `helm uninstall` removing everything.

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodekit/nodekit/deploy"
	"github.com/nodekit/nodekit/test/helm"
	"github.com/nodekit/nodekit/test/testbed"
)

func TestHelmInstall(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	helmBin, err := helm.Binary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	chart, err := filepath.Abs(filepath.Join(deployDir, "helm", "nodekit"))
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := deploy.ParseManifest(deployRead(t, "nodekit.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	bed := testbed.Start(t, testbed.Config{})
	kubectl := deployKubectl{bed: bed, home: t.TempDir()}
	home := t.TempDir()
	// helm runs in the node namespace, where the API server listens and
	// from where nothing else can be reached.
	run := func(args ...string) (string, error) {
		cmd := bed.Sandbox.Node().Command(ctx, helmBin, args...)
		cmd.Env = helm.Env(home, bed.Kube.Kubeconfig())
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	c := bed.Client()

	t.Run("helm install creates the manifest's objects", func(t *testing.T) {
		out, err := run("install", "nodekit", chart, "--namespace", "nodekit", "--create-namespace",
			"--set", "logship.clusterName=prod", "--set", "metaproxy.hostInterface=eni+")
		if err != nil {
			t.Fatalf("helm install: %v\n%s", err, out)
		}
		ns, err := c.CoreV1().Namespaces().Get(ctx, "nodekit", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ns.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
			t.Errorf("namespace labels %v: the Pod Security label is missing", ns.Labels)
		}
		ds, err := c.AppsV1().DaemonSets("nodekit").Get(ctx, "nodekit", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, ct := range ds.Spec.Template.Spec.Containers {
			names = append(names, ct.Name)
		}
		if !slices.Equal(names, []string{"metaproxy", "logship", "nodeexp"}) {
			t.Errorf("containers %v", names)
		}
		if ds.Spec.Template.Spec.PriorityClassName != manifest.DaemonSet.Spec.Template.Spec.PriorityClassName {
			t.Errorf("priority class %q", ds.Spec.Template.Spec.PriorityClassName)
		}
		cm, err := c.CoreV1().ConfigMaps("nodekit").Get(ctx, "nodekit", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cm.Data["logship.cluster-name"] != "prod" || cm.Data["metaproxy.host-interface"] != "eni+" {
			t.Errorf("ConfigMap data %v lacks the --set values", cm.Data)
		}
		for _, get := range []func() error{
			func() error {
				_, err := c.CoreV1().ServiceAccounts("nodekit").Get(ctx, "nodekit", metav1.GetOptions{})
				return err
			},
			func() error { _, err := c.RbacV1().ClusterRoles().Get(ctx, "nodekit", metav1.GetOptions{}); return err },
			func() error {
				_, err := c.RbacV1().ClusterRoleBindings().Get(ctx, "nodekit", metav1.GetOptions{})
				return err
			},
		} {
			if err := get(); err != nil {
				t.Error(err)
			}
		}
		if out, err := run("status", "nodekit", "--namespace", "nodekit"); err != nil || !strings.Contains(out, "STATUS: deployed") {
			t.Errorf("helm status: %v\n%s", err, out)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("the render applies with server-side validation", func(t *testing.T) {
		out, err := run("template", "nodekit", chart, "--namespace", "nodekit")
		if err != nil {
			t.Fatalf("helm template: %v\n%s", err, out)
		}
		path := filepath.Join(t.TempDir(), "render.yaml")
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := kubectl.run(ctx, "apply", "--server-side", "--dry-run=server", "--validate=strict", "--force-conflicts", "--field-manager=nodekit-e2e", "-f", path); err != nil {
			t.Errorf("kubectl apply --dry-run=server of the render: %v\n%s", err, out)
		}
	})

	t.Run("helm upgrade turns nodeexp off", func(t *testing.T) {
		out, err := run("upgrade", "nodekit", chart, "--namespace", "nodekit", "--reuse-values", "--set", "nodeexp.enabled=false")
		if err != nil {
			t.Fatalf("helm upgrade: %v\n%s", err, out)
		}
		ds, err := c.AppsV1().DaemonSets("nodekit").Get(ctx, "nodekit", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ct := range ds.Spec.Template.Spec.Containers {
			if ct.Name == "nodeexp" {
				t.Error("nodeexp still runs")
			}
		}
		cm, err := c.CoreV1().ConfigMaps("nodekit").Get(ctx, "nodekit", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cm.Data["logship.cluster-name"] != "prod" {
			t.Errorf("--reuse-values lost logship.clusterName: %v", cm.Data)
		}
		for k := range cm.Data {
			if strings.HasPrefix(k, "nodeexp.") {
				t.Errorf("ConfigMap keeps %s", k)
			}
		}
	})

	t.Run("helm uninstall removes everything", func(t *testing.T) {
		// No --wait: the bed runs no namespace controller, so the
		// chart's Namespace stays Terminating.
		if out, err := run("uninstall", "nodekit", "--namespace", "nodekit"); err != nil {
			t.Fatalf("helm uninstall: %v\n%s", err, out)
		}
		if _, err := c.RbacV1().ClusterRoles().Get(ctx, "nodekit", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("ClusterRole after uninstall: %v", err)
		}
		if _, err := c.AppsV1().DaemonSets("nodekit").Get(ctx, "nodekit", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("DaemonSet after uninstall: %v", err)
		}
		if ns, err := c.CoreV1().Namespaces().Get(ctx, "nodekit", metav1.GetOptions{}); err == nil && ns.DeletionTimestamp == nil {
			t.Errorf("namespace nodekit is not being deleted after uninstall")
		}
	})
}
