package kubeapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// PodSpec describes a pod the way a test needs it; the kubelet helpers fill
// in the rest.
type PodSpec struct {
	Namespace   string
	Name        string
	Node        string
	Labels      map[string]string
	Annotations map[string]string
	// Containers are name → image; default one container "app".
	Containers  map[string]string
	HostNetwork bool
}

// EnsureNamespace creates a namespace with annotations, or updates the
// annotations of an existing one.
func EnsureNamespace(ctx context.Context, c kubernetes.Interface, name string, annotations map[string]string) (*corev1.Namespace, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}}
	got, err := c.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		cur, gerr := c.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if gerr != nil {
			return nil, fmt.Errorf("reading namespace %s: %w", name, gerr)
		}
		cur.Annotations = annotations
		got, err = c.CoreV1().Namespaces().Update(ctx, cur, metav1.UpdateOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return got, nil
}

// CreatePod creates a pod already bound to spec.Node (as the scheduler
// would), creating its namespace if needed. It stays Pending with no IP
// until SetPodRunning.
func CreatePod(ctx context.Context, c kubernetes.Interface, spec PodSpec) (*corev1.Pod, error) {
	if spec.Namespace == "" {
		spec.Namespace = "default"
	}
	if _, err := c.CoreV1().Namespaces().Get(ctx, spec.Namespace, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		if _, err := EnsureNamespace(ctx, c, spec.Namespace, nil); err != nil {
			return nil, err
		}
	}
	containers := spec.Containers
	if len(containers) == 0 {
		containers = map[string]string{"app": "registry.example/app:1"}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   spec.Namespace,
			Name:        spec.Name,
			Labels:      spec.Labels,
			Annotations: spec.Annotations,
		},
		Spec: corev1.PodSpec{NodeName: spec.Node, HostNetwork: spec.HostNetwork},
	}
	for name, image := range containers {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: name, Image: image})
	}
	got, err := c.CoreV1().Pods(spec.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating pod %s/%s: %w", spec.Namespace, spec.Name, err)
	}
	return got, nil
}

// SetPodRunning reports the pod Running with these IPs, as the kubelet does
// once the sandbox is up. The first IP is status.podIP.
func SetPodRunning(ctx context.Context, c kubernetes.Interface, namespace, name string, ips ...string) (*corev1.Pod, error) {
	return SetPodStatus(ctx, c, namespace, name, corev1.PodRunning, ips...)
}

// SetPodStatus sets the pod's phase and IPs, with a ready condition and
// running container statuses when the phase is Running.
func SetPodStatus(ctx context.Context, c kubernetes.Interface, namespace, name string, phase corev1.PodPhase, ips ...string) (*corev1.Pod, error) {
	pod, err := c.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading pod %s/%s: %w", namespace, name, err)
	}
	now := metav1.Now()
	pod.Status.Phase = phase
	pod.Status.PodIP = ""
	pod.Status.PodIPs = nil
	for i, ip := range ips {
		if i == 0 {
			pod.Status.PodIP = ip
		}
		pod.Status.PodIPs = append(pod.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	if pod.Status.StartTime == nil {
		pod.Status.StartTime = &now
	}
	ready := corev1.ConditionFalse
	if phase == corev1.PodRunning {
		ready = corev1.ConditionTrue
	}
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: ready, LastTransitionTime: now}}
	pod.Status.ContainerStatuses = nil
	for _, ctr := range pod.Spec.Containers {
		st := corev1.ContainerStatus{
			Name:        ctr.Name,
			Image:       ctr.Image,
			ImageID:     ctr.Image,
			ContainerID: ContainerID(pod, ctr.Name),
			Ready:       phase == corev1.PodRunning,
		}
		if phase == corev1.PodRunning {
			st.State.Running = &corev1.ContainerStateRunning{StartedAt: now}
		} else if phase == corev1.PodSucceeded || phase == corev1.PodFailed {
			st.State.Terminated = &corev1.ContainerStateTerminated{FinishedAt: now}
		}
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, st)
	}
	got, err := c.CoreV1().Pods(namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("updating status of pod %s/%s: %w", namespace, name, err)
	}
	return got, nil
}

// DeletePod deletes the pod at once (grace period 0), as a force delete does.
func DeletePod(ctx context.Context, c kubernetes.Interface, namespace, name string) error {
	zero := int64(0)
	err := c.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting pod %s/%s: %w", namespace, name, err)
	}
	return nil
}

// ContainerID is the runtime ID the helpers give a pod's container:
// "containerd://" and 64 hex digits derived from the pod UID and container
// name, so a test can name the container's log file before the status exists.
func ContainerID(pod *corev1.Pod, container string) string {
	sum := sha256.Sum256([]byte(string(pod.UID) + "/" + container))
	return "containerd://" + hex.EncodeToString(sum[:])
}
