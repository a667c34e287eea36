"""Pinned upstream versions of the local test environment (one Kubernetes release)."""

KUBERNETES_VERSION = "v1.37.2"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"
HELM_VERSION = "v3.22.0"
PROMTOOL_VERSION = "v0.316.0"  # github.com/prometheus/prometheus module version (Prometheus 3.x)
COREDNS_VERSION = "v1.15.0"  # Service DNS for pods on a real node
