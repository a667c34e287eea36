"""Generated Secrets: created once when absent and never rotated behind the user's back."""

from __future__ import annotations

import base64
from typing import Any, Callable

from wacluster.api.interprocess import Role
from wacluster.resources.naming import labels
from wacluster.resources.pods import ClusterView


def _b64(value: str | bytes) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode()


def generated_secrets(view: ClusterView, password: Callable[[], str],
                      self_signed: Callable[[list[str]], tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    """Secrets the cluster needs and the user did not provide. `password` and `self_signed`
    are passed in so this stays pure; the operator creates these only if absent."""
    names = view.names
    out = []
    if view.spec.database.mode == "embedded":
        out.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": names.database_secret, "labels": labels(view.name, "database")},
                    "data": {"username": _b64("whatsapp"), "password": _b64(password())}})
    if not view.spec.api.admin_secret_name:
        out.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": names.admin_secret, "labels": labels(view.name, Role.WEBAPP)},
                    "data": {"username": _b64("admin"), "password": _b64(password())}})
    if not view.spec.api.tls_secret_name:
        hosts = [names.api_service, f"{names.api_service}.{view.namespace}",
                 f"{names.api_service}.{view.namespace}.svc", "localhost"]
        cert, key = self_signed(hosts)
        out.append({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                    "metadata": {"name": names.tls_secret, "labels": labels(view.name, Role.WEBAPP)},
                    "data": {"tls.crt": _b64(cert), "tls.key": _b64(key)}})
    return out


# Secrets and claims that hold data: kept on deletion unless deletionPolicy is Delete, and
# therefore never owned by the WhatsAppCluster (the garbage collector would remove them).
def retained_names(view: ClusterView) -> list[tuple[str, str]]:
    names = view.names
    out = []
    if view.spec.database.mode == "embedded":
        out += [("Secret", names.database_secret), ("PersistentVolumeClaim", names.database_claim)]
    if not view.spec.media.existing_claim:
        out.append(("PersistentVolumeClaim", names.media_claim))
    return out
