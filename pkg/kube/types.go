package kube

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The API objects the agents cache are decoded into these types, which hold
// only the fields nodekit reads, under core/v1's JSON names. Importing
// k8s.io/api/core/v1 links every core type with its generated protobuf and
// deep-copy code (about 2.4 MB per binary, whose pages each agent keeps
// resident), and its informer cache would hold whole pod specs.

// PodPhase is a pod's status.phase.
type PodPhase string

// The phases of core/v1.
const (
	PodPending   PodPhase = "Pending"
	PodRunning   PodPhase = "Running"
	PodSucceeded PodPhase = "Succeeded"
	PodFailed    PodPhase = "Failed"
	PodUnknown   PodPhase = "Unknown"
)

// Pod is a core/v1 Pod as nodekit reads it.
type Pod struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              PodSpec   `json:"spec,omitempty"`
	Status            PodStatus `json:"status,omitempty"`
}

// PodSpec holds the spec fields nodekit reads.
type PodSpec struct {
	NodeName           string      `json:"nodeName,omitempty"`
	HostNetwork        bool        `json:"hostNetwork,omitempty"`
	ServiceAccountName string      `json:"serviceAccountName,omitempty"`
	Containers         []Container `json:"containers,omitempty"`
	InitContainers     []Container `json:"initContainers,omitempty"`
}

// Container is a container's name and image.
type Container struct {
	Name  string `json:"name"`
	Image string `json:"image,omitempty"`
}

// PodStatus holds the status fields nodekit reads.
type PodStatus struct {
	Phase  PodPhase `json:"phase,omitempty"`
	PodIP  string   `json:"podIP,omitempty"`
	PodIPs []PodIP  `json:"podIPs,omitempty"`
}

// PodIP is one entry of status.podIPs.
type PodIP struct {
	IP string `json:"ip"`
}

// PodList is a list of pods.
type PodList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Pod `json:"items"`
}

// Namespace is a core/v1 Namespace's metadata (its annotations carry policy).
type Namespace struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
}

// NamespaceList is a list of namespaces.
type NamespaceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Namespace `json:"items"`
}

// DeepCopy returns a copy of p sharing nothing with it.
func (p *Pod) DeepCopy() *Pod {
	if p == nil {
		return nil
	}
	out := &Pod{TypeMeta: p.TypeMeta, Spec: p.Spec, Status: p.Status}
	p.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Spec.Containers = append([]Container(nil), p.Spec.Containers...)
	out.Spec.InitContainers = append([]Container(nil), p.Spec.InitContainers...)
	out.Status.PodIPs = append([]PodIP(nil), p.Status.PodIPs...)
	return out
}

// DeepCopyObject implements runtime.Object.
func (p *Pod) DeepCopyObject() runtime.Object { return p.DeepCopy() }

// DeepCopyObject implements runtime.Object.
func (l *PodList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := &PodList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	out.Items = make([]Pod, len(l.Items))
	for i := range l.Items {
		out.Items[i] = *l.Items[i].DeepCopy()
	}
	return out
}

// DeepCopy returns a copy of n sharing nothing with it.
func (n *Namespace) DeepCopy() *Namespace {
	if n == nil {
		return nil
	}
	out := &Namespace{TypeMeta: n.TypeMeta}
	n.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	return out
}

// DeepCopyObject implements runtime.Object.
func (n *Namespace) DeepCopyObject() runtime.Object { return n.DeepCopy() }

// DeepCopyObject implements runtime.Object.
func (l *NamespaceList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := &NamespaceList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	out.Items = make([]Namespace, len(l.Items))
	for i := range l.Items {
		out.Items[i] = *l.Items[i].DeepCopy()
	}
	return out
}

// coreV1 is the API group version of pods and namespaces.
var coreV1 = schema.GroupVersion{Version: "v1"}

// newScheme registers the lean types under core/v1's kinds, plus the meta
// types (WatchEvent, ListOptions) a list-and-watch needs.
func newScheme() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	scheme.AddKnownTypes(coreV1, &Pod{}, &PodList{}, &Namespace{}, &NamespaceList{})
	metav1.AddToGroupVersion(scheme, coreV1)
	if err := scheme.SetVersionPriority(coreV1); err != nil {
		return nil, fmt.Errorf("registering core/v1 kinds: %w", err)
	}
	return scheme, nil
}
