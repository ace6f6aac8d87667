package kube

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// TestClientDecodesLeanTypes serves what kube-apiserver sends (core/v1 JSON,
// with fields the lean types do not name) and checks that a list and a watch
// event arrive as the lean types with every field nodekit reads.
func TestClientDecodesLeanTypes(t *testing.T) {
	pod := corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", UID: "uid-1", ResourceVersion: "7",
			Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"iam.amazonaws.com/role": "reader"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec: corev1.PodSpec{NodeName: "node-a", ServiceAccountName: "sa",
			Containers:     []corev1.Container{{Name: "app", Image: "app:1", Args: []string{"--big"}}},
			InitContainers: []corev1.Container{{Name: "init", Image: "init:1"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1", PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}, {IP: "fd00::1"}}},
	}
	want := Pod{
		Spec: PodSpec{NodeName: "node-a", ServiceAccountName: "sa",
			Containers: []Container{{Name: "app", Image: "app:1"}}, InitContainers: []Container{{Name: "init", Image: "init:1"}}},
		Status: PodStatus{Phase: PodRunning, PodIP: "10.0.0.1", PodIPs: []PodIP{{IP: "10.0.0.1"}, {IP: "fd00::1"}}},
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/pods", func(w http.ResponseWriter, r *http.Request) {
		if got := r.URL.Query().Get("fieldSelector"); got != "spec.nodeName=node-a" {
			t.Errorf("fieldSelector = %q", got)
		}
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("watch") == "true" {
			_ = json.NewEncoder(w).Encode(map[string]any{"type": "MODIFIED", "object": pod})
			return
		}
		_ = json.NewEncoder(w).Encode(corev1.PodList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodList"},
			ListMeta: metav1.ListMeta{ResourceVersion: "9"}, Items: []corev1.Pod{pod}})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c, err := NewClientForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	lw := c.Pods(fields.OneTermEqualSelector("spec.nodeName", "node-a"))

	check := func(t *testing.T, got *Pod) {
		t.Helper()
		if got.Name != "web" || got.Namespace != "shop" || got.UID != "uid-1" || got.Labels["app"] != "web" ||
			got.Annotations["iam.amazonaws.com/role"] != "reader" || len(got.ManagedFields) != 1 {
			t.Fatalf("metadata = %+v", got.ObjectMeta)
		}
		// The decoders may or may not keep apiVersion and kind; nodekit never reads them.
		got.ObjectMeta, got.TypeMeta = metav1.ObjectMeta{}, metav1.TypeMeta{}
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if string(g) != string(w) {
			t.Fatalf("decoded pod\n got %s\nwant %s", g, w)
		}
	}
	t.Run("list", func(t *testing.T) {
		obj, err := lw.List(metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		l, ok := obj.(*PodList)
		if !ok || l.ResourceVersion != "9" || len(l.Items) != 1 {
			t.Fatalf("List = %T %+v", obj, obj)
		}
		check(t, &l.Items[0])
	})
	t.Run("watch", func(t *testing.T) {
		w, err := lw.Watch(metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		e := <-w.ResultChan()
		got, ok := e.Object.(*Pod)
		if e.Type != watch.Modified || !ok {
			t.Fatalf("watch event = %s %T", e.Type, e.Object)
		}
		check(t, got)
	})
}

func TestPodDeepCopyShares(t *testing.T) {
	p := &Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "1"}},
		Spec:   PodSpec{Containers: []Container{{Name: "c"}}},
		Status: PodStatus{PodIPs: []PodIP{{IP: "10.0.0.1"}}}}
	c := p.DeepCopyObject().(*Pod)
	c.Labels["a"] = "2"
	c.Spec.Containers[0].Name = "x"
	c.Status.PodIPs[0].IP = "x"
	if p.Labels["a"] != "1" || p.Spec.Containers[0].Name != "c" || p.Status.PodIPs[0].IP != "10.0.0.1" {
		t.Fatalf("the copy shares memory with the original: %+v", p)
	}
}
