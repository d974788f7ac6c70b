//go:build tools

// Package tools pins the Kubernetes binaries the test suites build:
// kube-apiserver, kubectl and etcd for tests/e2e, and the node components
// (kubelet, kube-proxy, kube-controller-manager, kube-scheduler) for tests/node.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"

	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"

	// etcd at the version Kubernetes itself depends on.
	_ "go.etcd.io/etcd/server/v3"
)
