package main

import (
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodekit/nodekit/test/kubeapi"
	"github.com/nodekit/nodekit/test/podlogs"
)

// newContainerLog lays out the log of pod's container under root as
// containerd and the kubelet do (test/podlogs), with the container ID the
// test bed gave the pod.
func newContainerLog(root string, pod *corev1.Pod, container string, now func() time.Time) (*podlogs.Container, error) {
	n, err := podlogs.NewNode(root)
	if err != nil {
		return nil, err
	}
	return n.Add(podlogs.Spec{
		Namespace: pod.Namespace, Pod: pod.Name, PodUID: string(pod.UID), Container: container,
		ContainerID: strings.TrimPrefix(kubeapi.ContainerID(pod, container), "containerd://"), Now: now,
	})
}
