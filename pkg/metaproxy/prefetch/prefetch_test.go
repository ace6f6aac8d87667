package prefetch

import (
	"io"
	"log/slog"
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/nodekit/nodekit/pkg/kube"
	"github.com/nodekit/nodekit/pkg/metaproxy/creds"
	"github.com/nodekit/nodekit/pkg/metaproxy/role"
)

type fakeTracker struct{ tracked map[string]creds.Key }

func (f *fakeTracker) Track(owner string, k creds.Key) { f.tracked[owner] = k }
func (f *fakeTracker) Untrack(owner string)            { delete(f.tracked, owner) }

func pod(uid, roleName string, phase kube.PodPhase) *kube.Pod {
	p := &kube.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p-" + uid, UID: types.UID(uid)}, Status: kube.PodStatus{Phase: phase}}
	if roleName != "" {
		p.Annotations = map[string]string{"iam.amazonaws.com/role": roleName}
	}
	return p
}

func TestHandler(t *testing.T) {
	const base = "arn:aws:iam::123456789012:role/"
	policy, err := role.New(role.Config{BaseRoleARN: base, RoleKey: "iam.amazonaws.com/role"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &fakeTracker{tracked: map[string]creds.Key{}}
	h := New(policy, tr, slog.New(slog.NewTextHandler(io.Discard, nil)))

	h.OnAdd(pod("a", "app", kube.PodPending), false)
	h.OnAdd(pod("b", "", kube.PodRunning), false)
	h.OnAdd(pod("c", "arn:aws:s3:::nope", kube.PodRunning), false)
	want := map[string]creds.Key{"a": {RoleARN: base + "app", SessionName: "ns.p-a"}}
	if !reflect.DeepEqual(tr.tracked, want) {
		t.Fatalf("after adds: %v, want %v", tr.tracked, want)
	}
	h.OnUpdate(nil, pod("a", "web", kube.PodRunning))
	if tr.tracked["a"].RoleARN != base+"web" {
		t.Fatalf("role change not tracked: %v", tr.tracked)
	}
	h.OnUpdate(nil, pod("a", "web", kube.PodSucceeded))
	if _, ok := tr.tracked["a"]; ok {
		t.Fatal("finished pod still tracked")
	}
	h.OnAdd(pod("d", "app", kube.PodRunning), false)
	h.OnDelete(cache.DeletedFinalStateUnknown{Key: "ns/p-d", Obj: pod("d", "app", kube.PodRunning)})
	if len(tr.tracked) != 0 {
		t.Fatalf("after deletes: %v", tr.tracked)
	}
	h.OnAdd("not a pod", false) // must not panic
}
