"""The pod template every runtime role shares: image, environment, security, probes, placement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wacluster.api.interprocess import MEDIA_DIR, Env, Port, PortName, Role, selector
from wacluster.api.v1alpha1 import (
    CLOUD_ACCESS_TOKEN_KEY, CLOUD_APP_SECRET_KEY, CLOUD_VERIFY_TOKEN_KEY, ResourceRequirements, RoleSpec,
    WhatsAppClusterSpec,
)
from wacluster.resources.naming import RUNTIME_UID, Names, labels

DEFAULT_RESOURCES = {
    Role.MASTER: {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "256Mi"}},
    Role.COREAPP: {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "384Mi"}},
    Role.WEBAPP: {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "384Mi"}},
    Role.SANDBOX: {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "256Mi"}},
    Role.DBUPGRADE: {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "256Mi"}},
}


@dataclass(frozen=True)
class ClusterView:
    """What the builders need to know about one WhatsAppCluster."""

    name: str
    namespace: str
    uid: str
    spec: WhatsAppClusterSpec
    version: str  # the version the roles run now (the target only once dbupgrade succeeded)

    @property
    def names(self) -> Names:
        return Names(self.name)

    def image(self, version: str | None = None) -> str:
        return f"{self.spec.image.repository}:{version or self.version}"


def container_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security(uid: int = RUNTIME_UID) -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"}}


def database_env(view: ClusterView) -> list[dict[str, Any]]:
    db = view.spec.database
    names = view.names
    if db.mode == "external" and db.external is not None:
        ext = db.external
        secret = ext.credentials_secret
        host, port, name, sslmode = ext.host, ext.port, ext.database, ext.sslmode
        user_ref = {"name": secret.name, "key": secret.username_key}
        password_ref = {"name": secret.name, "key": secret.password_key}
    else:
        host, port, name, sslmode = names.database, Port.DATABASE, "whatsapp", "disable"
        user_ref = {"name": names.database_secret, "key": "username"}
        password_ref = {"name": names.database_secret, "key": "password"}
    return [
        {"name": Env.DB_HOST, "value": host},
        {"name": Env.DB_PORT, "value": str(port)},
        {"name": Env.DB_NAME, "value": name},
        {"name": Env.DB_SSLMODE, "value": sslmode},
        {"name": Env.DB_USER, "valueFrom": {"secretKeyRef": user_ref}},
        {"name": Env.DB_PASSWORD, "valueFrom": {"secretKeyRef": password_ref}},
    ]


# The key of the Secret <cluster>-internal that holds the control port's bearer token.
INTERNAL_TOKEN_KEY = "token"


def internal_token_env(view: ClusterView) -> dict[str, Any]:
    """The control port's bearer token, for the roles on either end of it: masters, coreapps, webapps."""
    return {"name": Env.INTERNAL_TOKEN,
            "valueFrom": {"secretKeyRef": {"name": view.names.internal_secret, "key": INTERNAL_TOKEN_KEY}}}


def _cloud_secret_env(view: ClusterView, name: str, key: str) -> dict[str, Any]:
    cloud = view.spec.gateway.cloud
    assert cloud is not None and cloud.credentials_secret  # the spec's rules hold in cloud mode
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": cloud.credentials_secret, "key": key}}}


def coreapp_gateway_env(view: ClusterView) -> list[dict[str, Any]]:
    """Cloud mode: which account the coreapps send through, and the access token (coreapps and
    webapps get it; see webapp_gateway_env). Nothing in the other modes, which the coreapps' default (sandbox) covers, so an
    operator upgrade does not roll the coreapps of every existing cluster."""
    cloud = view.spec.gateway.cloud
    if view.spec.gateway.mode != "cloud" or cloud is None:
        return []
    return [
        {"name": Env.GATEWAY_MODE, "value": "cloud"},
        {"name": Env.CLOUD_BASE_URL, "value": cloud.base_url},
        {"name": Env.CLOUD_API_VERSION, "value": cloud.api_version},
        {"name": Env.CLOUD_PHONE_NUMBER_ID, "value": cloud.phone_number_id},
        {"name": Env.CLOUD_MESSAGES_PER_SECOND, "value": str(cloud.messages_per_second)},
        _cloud_secret_env(view, Env.CLOUD_ACCESS_TOKEN, CLOUD_ACCESS_TOKEN_KEY),
    ]


def webapp_gateway_env(view: ClusterView) -> list[dict[str, Any]]:
    """Cloud mode: what the webapps' endpoint for Meta's webhooks checks them with, whose
    notifications it keeps, and the Graph API the account endpoints call."""
    cloud = view.spec.gateway.cloud
    if view.spec.gateway.mode != "cloud" or cloud is None:
        return []
    return [{"name": Env.GATEWAY_MODE, "value": "cloud"},
            {"name": Env.CLOUD_BASE_URL, "value": cloud.base_url},
            {"name": Env.CLOUD_API_VERSION, "value": cloud.api_version},
            {"name": Env.CLOUD_PHONE_NUMBER_ID, "value": cloud.phone_number_id},
            {"name": Env.CLOUD_WEBHOOK_PATH, "value": cloud.webhook_path},
            _cloud_secret_env(view, Env.CLOUD_APP_SECRET, CLOUD_APP_SECRET_KEY),
            _cloud_secret_env(view, Env.CLOUD_VERIFY_TOKEN, CLOUD_VERIFY_TOKEN_KEY),
            # The webapps need the access token too: POST /v1/account/verify registers the number
            # with the Cloud API (POST /{version}/{phone-number-id}/register), which only the
            # account's token may do; it is still a secretKeyRef, never a value in the pod spec.
            _cloud_secret_env(view, Env.CLOUD_ACCESS_TOKEN, CLOUD_ACCESS_TOKEN_KEY)]


def gateway_url(view: ClusterView) -> str | None:
    """The server speaking the sandbox's protocol; None in cloud mode, where there is none."""
    if view.spec.gateway.mode == "external":
        return view.spec.gateway.endpoint
    if view.spec.gateway.mode == "sandbox":
        return f"http://{view.names.role(Role.SANDBOX)}:{Port.GATEWAY}"
    return None


def runtime_env(view: ClusterView) -> list[dict[str, Any]]:
    names = view.names
    url = gateway_url(view)
    field = lambda path: {"valueFrom": {"fieldRef": {"fieldPath": path}}}  # noqa: E731
    return [
        {"name": Env.CLUSTER, "value": view.name},
        {"name": Env.NAMESPACE, **field("metadata.namespace")},
        {"name": Env.POD_NAME, **field("metadata.name")},
        {"name": Env.POD_IP, **field("status.podIP")},
        {"name": Env.VERSION, "value": view.version},
        {"name": Env.LEASE_NAME, "value": names.master_lease},
        *([{"name": Env.GATEWAY_URL, "value": url}] if url else []),
        {"name": Env.SETTINGS_FILE, "value": "/etc/wacluster/settings.json"},
        *database_env(view),
        # Only when not the default: a pod template that stays the same restarts no pod on upgrade.
        *([{"name": Env.LOG_FORMAT, "value": view.spec.log_format}] if view.spec.log_format != "text" else []),
    ]


def default_affinity(view: ClusterView, role: str) -> dict[str, Any]:
    """Prefer one pod of a role per host (the seeds: separate machines); never block scheduling."""
    return {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 100,
        "podAffinityTerm": {"labelSelector": {"matchLabels": selector(view.name, role)},
                            "topologyKey": "kubernetes.io/hostname"},
    }]}}


def zone_spread(view: ClusterView, role: str) -> list[dict[str, Any]]:
    """Spread a role over zones (the seeds: separate racks) when the nodes carry zone labels."""
    return [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
             "whenUnsatisfiable": "ScheduleAnyway",
             "labelSelector": {"matchLabels": selector(view.name, role)}}]


def probe(path: str, period: int = 5, failures: int = 3) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": PortName.METRICS}, "periodSeconds": period,
            "timeoutSeconds": 2, "failureThreshold": failures}


def runtime_container(view: ClusterView, role: str, args: list[str], ports: list[dict[str, Any]],
                      resources: ResourceRequirements | None) -> dict[str, Any]:
    return {
        "name": role,
        "image": view.image(),
        "imagePullPolicy": view.spec.image.pull_policy,
        "args": args,
        "env": runtime_env(view),
        "ports": [*ports, {"name": PortName.METRICS, "containerPort": Port.METRICS}],
        "resources": resources.model_dump(by_alias=True, exclude_none=True) if resources else DEFAULT_RESOURCES[role],
        "securityContext": container_security(),
        # Readiness: the process serves and reaches its dependencies; for a coreapp it does NOT
        # mean "primary" (a standby is ready too), so a Service never flaps on a failover.
        "readinessProbe": probe("/readyz"),
        "livenessProbe": probe("/livez", period=10, failures=6),
        "volumeMounts": [
            {"name": "settings", "mountPath": "/etc/wacluster", "readOnly": True},
            {"name": "media", "mountPath": MEDIA_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def runtime_pod(view: ClusterView, role: str, role_spec: RoleSpec | None, container: dict[str, Any],
                extra_volumes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    names = view.names
    media_claim = view.spec.media.existing_claim or names.media_claim
    spec: dict[str, Any] = {
        "serviceAccountName": names.runtime_account,
        "automountServiceAccountToken": role == Role.MASTER,
        "securityContext": pod_security(),
        "containers": [container],
        "volumes": [
            {"name": "settings", "configMap": {"name": names.settings}},
            {"name": "media", "persistentVolumeClaim": {"claimName": media_claim}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
            *(extra_volumes or []),
        ],
    }
    if role_spec is not None:
        spec["affinity"] = role_spec.affinity or default_affinity(view, role)
        if role_spec.affinity is None:
            spec["topologySpreadConstraints"] = zone_spread(view, role)
        if role_spec.node_selector:
            spec["nodeSelector"] = role_spec.node_selector
        if role_spec.tolerations:
            spec["tolerations"] = role_spec.tolerations
    if view.spec.image.pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in view.spec.image.pull_secrets]
    return {"metadata": {"labels": labels(view.name, role, view.version)}, "spec": spec}
