"""Whether the real node enforces NetworkPolicies, and if not, exactly why.

The node's CNI bridge (node.py) forwards every packet; NetworkPolicies there are API objects
only. An enforcer would run beside kube-proxy as a host process, built from the Go module proxy
like the other binaries (build.py). None could be had when this was written, so the e2e test of
the operator's policies skips on this node with the reason below instead of passing vacuously.
"""

from __future__ import annotations

import gzip
from pathlib import Path

# Each candidate and version was asked once of the Go module proxy (2026-11); every one answered
# 403 "This module version is not available", and neither module lists any version.
REFUSED_ENFORCERS = {
    "sigs.k8s.io/kube-network-policies": ("v0.6.0", "v0.5.0", "v0.4.0"),
    "github.com/cloudnativelabs/kube-router/v2": ("v2.5.0", "v2.4.1", "v2.2.1"),
    "github.com/cloudnativelabs/kube-router": ("v1.6.0",),
}

# kube-network-policies hands packets to user space with nftables' `queue` statement.
NFQUEUE_OPTION = "CONFIG_NFT_QUEUE"


def kernel_option(option: str, config: Path = Path("/proc/config.gz")) -> str | None:
    """The running kernel's setting of `option` ("y", "m"), None when unset or unknowable."""
    try:
        with gzip.open(config, "rt") as lines:
            for line in lines:
                if line.startswith(f"{option}="):
                    return line.strip().split("=", 1)[1]
    except OSError:
        return None
    return None


def why_not_enforced() -> str:
    """Why the real node enforces no NetworkPolicy: what was tried, and what the kernel lacks."""
    tried = "; ".join(f"{module} {', '.join(versions)}" for module, versions in REFUSED_ENFORCERS.items())
    reason = ("the real node's CNI bridge enforces no NetworkPolicy and no enforcer could be built: "
              f"the Go module proxy refused every version tried ({tried})")
    if kernel_option(NFQUEUE_OPTION) is None:
        reason += (f"; this kernel also lacks {NFQUEUE_OPTION}, which kube-network-policies needs "
                   "(kube-router's iptables and ipset would do)")
    return reason
