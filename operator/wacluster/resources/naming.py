"""Names, labels and ports shared by the operator and the runtime roles (one name per concept)."""

from __future__ import annotations

import re

MANAGED_BY = "wacluster-operator"
PART_OF = "wacluster"
CLUSTER_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"

API_PORT = 9090          # webapp HTTPS API
CONTROL_PORT = 6250      # coreapp and master control endpoint (heartbeats, routed requests)
GATEWAY_PORT = 6200      # sandbox WhatsApp server
METRICS_PORT = 9100      # every role: /metrics, /livez, /readyz
DATABASE_PORT = 5432
RUNTIME_UID = 10001      # the image's non-root user
POSTGRES_UID = 999       # the postgres user of the official image


def labels(cluster: str, component: str, version: str | None = None) -> dict[str, str]:
    out = {
        "app.kubernetes.io/name": "whatsapp",
        CLUSTER_LABEL: cluster,
        COMPONENT_LABEL: component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }
    if version:
        out["app.kubernetes.io/version"] = label_value(version)
    return out


def selector(cluster: str, component: str) -> dict[str, str]:
    return {CLUSTER_LABEL: cluster, COMPONENT_LABEL: component}


def label_value(value: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]", "-", value)[:63]
    return cleaned.strip("-_.") or "unknown"


def dns_suffix(value: str) -> str:
    """A version as a DNS-label-safe suffix (Job names carry it)."""
    cleaned = re.sub(r"[^a-z0-9\-]", "-", value.lower()).strip("-")
    return cleaned[:40] or "v"


class Names:
    """Every child object's name, derived from the cluster name."""

    def __init__(self, cluster: str) -> None:
        self.cluster = cluster

    def role(self, role: str) -> str:
        return f"{self.cluster}-{role}"

    @property
    def runtime_account(self) -> str:
        return f"{self.cluster}-runtime"

    @property
    def settings(self) -> str:
        return f"{self.cluster}-settings"

    @property
    def master_lease(self) -> str:
        return f"{self.cluster}-master"

    @property
    def api_service(self) -> str:
        return f"{self.cluster}-api"

    @property
    def database(self) -> str:
        return f"{self.cluster}-db"

    @property
    def database_secret(self) -> str:
        return f"{self.cluster}-db-credentials"

    @property
    def admin_secret(self) -> str:
        return f"{self.cluster}-admin"

    @property
    def tls_secret(self) -> str:
        return f"{self.cluster}-api-tls"

    @property
    def media_claim(self) -> str:
        return f"{self.cluster}-media"

    @property
    def database_claim(self) -> str:
        # The StatefulSet's volumeClaimTemplate "data" for pod 0.
        return f"data-{self.database}-0"

    def dbupgrade_job(self, version: str) -> str:
        return f"{self.cluster}-dbupgrade-{dns_suffix(version)}"
