"""Generated Secrets: created once when absent. Passwords are never rotated behind the user's
back; the generated API certificate is renewed by the operator before it expires."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any, Callable, Protocol

from wacluster.api.interprocess import Role
from wacluster.resources.naming import labels
from wacluster.resources.pods import INTERNAL_TOKEN_KEY, ClusterView

# On the generated API certificate's Secret: when it expires, for people reading the Secret.
NOT_AFTER_ANNOTATION = "wacluster.io/not-after"


def _b64(value: str | bytes) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode()


class Certificate(Protocol):
    cert_pem: bytes
    key_pem: bytes
    not_after: dt.datetime


def generated_secrets(view: ClusterView, password: Callable[[], str]) -> list[dict[str, Any]]:
    """Secrets of credentials the cluster needs and the user did not provide. `password` is
    passed in so this stays pure; the operator creates these only if absent."""
    names = view.names
    out = []
    if view.spec.database.mode == "embedded":
        out.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": names.database_secret, "labels": labels(view.name, "database")},
                    "data": {"username": _b64("whatsapp"), "password": _b64(password())}})
    # The key webapps sign outgoing webhooks with; receivers verify with it.
    out.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": names.webhook_signing_secret, "labels": labels(view.name, Role.WEBAPP)},
                "data": {"key": _b64(password())}})
    # The token masters and webapps present on a coreapp's control port (runtime/internal_auth.py).
    out.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": names.internal_secret, "labels": labels(view.name, Role.COREAPP)},
                "data": {INTERNAL_TOKEN_KEY: _b64(password())}})
    if not view.spec.api.admin_secret_name:
        out.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": names.admin_secret, "labels": labels(view.name, Role.WEBAPP)},
                    "data": {"username": _b64("admin"), "password": _b64(password())}})
    return out


def api_hosts(view: ClusterView) -> list[str]:
    """The names the API Service answers to, for the generated certificate."""
    service = view.names.api_service
    return [service, f"{service}.{view.namespace}", f"{service}.{view.namespace}.svc", "localhost"]


def api_tls_secret(view: ClusterView, certificate: Certificate) -> dict[str, Any]:
    """The generated API certificate's Secret (only when the user names none). Self-signed, so
    the certificate is its own CA: `ca.crt` is what clients trust."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": view.names.tls_secret, "labels": labels(view.name, Role.WEBAPP),
                         "annotations": {NOT_AFTER_ANNOTATION: certificate.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")}},
            "data": {"tls.crt": _b64(certificate.cert_pem), "tls.key": _b64(certificate.key_pem),
                     "ca.crt": _b64(certificate.cert_pem)}}


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
