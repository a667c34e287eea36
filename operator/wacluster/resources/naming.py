"""Names of the objects a cluster owns and the labels the builders put on them."""

from __future__ import annotations

import re

from wacluster.api.interprocess import APP_NAME, MANAGED_BY, PART_OF, Label, master_lease, selector

RUNTIME_UID = 10001      # the image's non-root user
POSTGRES_UID = 999       # the postgres user of the official image


def labels(cluster: str, component: str, version: str | None = None) -> dict[str, str]:
    out = {
        Label.NAME: APP_NAME,
        **selector(cluster, component),
        Label.PART_OF: PART_OF,
        Label.MANAGED_BY: MANAGED_BY,
    }
    if version:
        out[Label.VERSION] = label_value(version)
    return out


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
        return master_lease(self.cluster)

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
    def webhook_signing_secret(self) -> str:
        return f"{self.cluster}-webhook-signing"

    @property
    def internal_secret(self) -> str:
        return f"{self.cluster}-internal"

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
