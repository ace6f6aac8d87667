package kube

import (
	"context"
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
)

func testPod(name string, uid types.UID, hostNetwork bool, ips ...string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: uid},
		Spec:       corev1.PodSpec{NodeName: "node-a", HostNetwork: hostNetwork, Containers: []corev1.Container{{Name: "app", Image: "app:1", Args: []string{"--big"}}}},
	}
	for i, ip := range ips {
		if i == 0 {
			p.Status.PodIP = ip
		}
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	return p
}

func startPods(t *testing.T, client kubernetes.Interface) *Pods {
	t.Helper()
	pods, err := NewPods(clientsetSource{client}, "node-a", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = pods.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	if err := pods.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	return pods
}

func TestPodsIndexes(t *testing.T) {
	client := fake.NewClientset(
		testPod("dual", "uid-dual", false, "10.0.0.1", "fd00::1"),
		testPod("host", "uid-host", true, "192.168.1.10"),
		testPod("pending", "uid-pending", false),
	)
	pods := startPods(t, client)

	tests := []struct {
		name string
		ip   string
		want []string
	}{
		{"first IP of a dual-stack pod", "10.0.0.1", []string{"dual"}},
		{"second IP of a dual-stack pod", "fd00::1", []string{"dual"}},
		{"host-network pods never match", "192.168.1.10", nil},
		{"unknown IP", "10.0.0.99", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, p := range pods.ByIP(tt.ip) {
				got = append(got, p.Name)
			}
			if len(got) != len(tt.want) || (len(got) > 0 && got[0] != tt.want[0]) {
				t.Fatalf("ByIP(%s) = %v, want %v", tt.ip, got, tt.want)
			}
		})
	}

	p, ok := pods.ByUID("uid-pending")
	if !ok || p.Name != "pending" {
		t.Fatalf("ByUID(uid-pending) = %v, %v", p, ok)
	}
	if len(p.Spec.Containers) != 1 || p.Spec.Containers[0] != (Container{Name: "app", Image: "app:1"}) {
		t.Fatalf("cached pod's containers = %+v; want app with image app:1", p.Spec.Containers)
	}
	if _, ok := pods.ByUID("nope"); ok {
		t.Fatal("ByUID(nope) found a pod")
	}
}

func TestNewPodsNeedsNode(t *testing.T) {
	if _, err := NewPods(clientsetSource{fake.NewClientset()}, "", slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("NewPods without a node name succeeded")
	}
}
