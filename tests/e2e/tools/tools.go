//go:build tools

// Package tools pins the Kubernetes binaries the e2e suite builds.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"

	// etcd at the version Kubernetes itself depends on.
	_ "go.etcd.io/etcd/server/v3"
)
