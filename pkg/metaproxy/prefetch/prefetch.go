// Package prefetch turns pod informer events into credential cache
// bookkeeping: when a pod with a role appears (before it even has an IP), its
// credentials are fetched, so no pod known before it asks waits on STS; when
// it goes, or finishes, or its role changes, the cache is told.
package prefetch

import (
	"errors"
	"log/slog"

	"k8s.io/client-go/tools/cache"

	"github.com/nodekit/nodekit/pkg/kube"
	"github.com/nodekit/nodekit/pkg/metaproxy/creds"
	"github.com/nodekit/nodekit/pkg/metaproxy/role"
)

// Roles decides a pod's role; *role.Policy satisfies it.
type Roles interface {
	Resolve(pod *kube.Pod) (role.Assignment, error)
}

// Tracker is the cache's bookkeeping side; *creds.Cache satisfies it.
type Tracker interface {
	Track(owner string, key creds.Key)
	Untrack(owner string)
}

// Handler is a cache.ResourceEventHandler for the node's pod informer.
type Handler struct {
	roles   Roles
	tracker Tracker
	logger  *slog.Logger
}

var _ cache.ResourceEventHandler = (*Handler)(nil)

// New builds the handler; register it with the pod informer.
func New(roles Roles, tracker Tracker, logger *slog.Logger) *Handler {
	return &Handler{roles: roles, tracker: tracker, logger: logger}
}

// OnAdd implements cache.ResourceEventHandler.
func (h *Handler) OnAdd(obj any, _ bool) { h.sync(obj) }

// OnUpdate implements cache.ResourceEventHandler.
func (h *Handler) OnUpdate(_, obj any) { h.sync(obj) }

// OnDelete implements cache.ResourceEventHandler.
func (h *Handler) OnDelete(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if pod, ok := obj.(*kube.Pod); ok {
		h.tracker.Untrack(string(pod.UID))
	}
}

func (h *Handler) sync(obj any) {
	pod, ok := obj.(*kube.Pod)
	if !ok {
		return
	}
	uid := string(pod.UID)
	if pod.Spec.HostNetwork || pod.Status.Phase == kube.PodSucceeded || pod.Status.Phase == kube.PodFailed {
		h.tracker.Untrack(uid)
		return
	}
	a, err := h.roles.Resolve(pod)
	if err != nil {
		// The request path logs the denial with its reason when the pod asks.
		if !errors.Is(err, role.ErrNoRole) {
			h.logger.Debug("not prefetching credentials", "namespace", pod.Namespace, "pod", pod.Name, "uid", uid, "reason", err.Error())
		}
		h.tracker.Untrack(uid)
		return
	}
	h.tracker.Track(uid, creds.Key{RoleARN: a.ARN, ExternalID: a.ExternalID, SessionName: a.SessionName})
}
