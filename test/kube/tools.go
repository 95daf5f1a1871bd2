//go:build tools

// The real kube-apiserver and kubectl, built from the pinned k8s.io/kubernetes for the tests (never shipped).
package tools

import (
	// Istio's CRDs (kubernetes/customresourcedefinitions.gen.yaml) come with this module.
	_ "istio.io/api/networking/v1"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
