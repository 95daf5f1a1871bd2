//go:build tools

// The real kube-apiserver, built from the pinned k8s.io/kubernetes for the tests (never shipped).
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
