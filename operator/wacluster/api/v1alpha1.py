"""The WhatsAppCluster API, version wacluster.io/v1alpha1.

These pydantic models are the single source of truth: `crds/whatsappcluster.yaml` is generated
from them (`make crds`), and the operator parses every object it reconciles with them. Field
descriptions become `kubectl explain` text; CEL rules in `json_schema_extra` become
`x-kubernetes-validations` so bad input is rejected at admission with the rule's message.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator
from pydantic.alias_generators import to_camel

GROUP = "wacluster.io"
VERSION = "v1alpha1"
KIND = "WhatsAppCluster"
PLURAL = "whatsappclusters"
SINGULAR = "whatsappcluster"
SHORT_NAMES = ["wac"]

QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def _rules(*rules: tuple[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": [{"rule": rule, "message": message} for rule, message in rules]}


def _free_form(description: str) -> Any:
    """A Kubernetes core type we pass through unchanged (the apiserver validates it on the pods)."""
    return Field(default=None, description=description,
                 json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})


# Kubernetes' resource.Quantity grammar: a number with a binary or decimal suffix or an exponent.
RESOURCE_QUANTITY = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$")


def _resource_quantity(value: int | str) -> int | str:
    if isinstance(value, str) and not RESOURCE_QUANTITY.match(value):
        raise ValueError(f"{value!r} is not a quantity such as 500m, 2 or 1Gi")
    return value


# An int-or-string quantity, as core/v1 ResourceRequirements spells it.
ResourceQuantity = Annotated[int | str, AfterValidator(_resource_quantity), WithJsonSchema({
    "x-kubernetes-int-or-string": True,
    # Bounded, so the CEL comparison below stays within the API server's cost budget.
    # (value checks of strings; an integer passes them as JSON Schema ignores them for numbers)
    "maxLength": 32, "pattern": RESOURCE_QUANTITY.pattern,
})]


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              use_attribute_docstrings=False)


class ImageSpec(ApiModel):
    """Where the wacluster image comes from; every role runs the same image."""

    repository: str = Field("wacluster", description="Image repository without tag, e.g. registry.example.com/wacluster.")
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="Image pull policy for every pod of the cluster.")
    pull_secrets: list[str] = Field(default_factory=list, description="Names of image pull Secrets in the cluster's namespace.")


class ResourceRequirements(ApiModel):
    """Compute resources of a role's container (core/v1 ResourceRequirements), checked at
    admission: a request above its limit would be refused on the Deployment, after the fact."""

    requests: dict[str, ResourceQuantity] | None = Field(
        None, max_length=8, description="Minimum resources, e.g. {cpu: 250m, memory: 256Mi}.")
    limits: dict[str, ResourceQuantity] | None = Field(
        None, max_length=8, description="Maximum resources, e.g. {memory: 512Mi}.")

    model_config = ConfigDict(json_schema_extra=_rules(
        ("!has(self.requests) || !has(self.limits) || self.requests.all(k, !(k in self.limits) || "
         "quantity(string(self.requests[k])).compareTo(quantity(string(self.limits[k]))) <= 0)",
         "resources.requests must not exceed resources.limits for the same resource"),
    ))


class RoleSpec(ApiModel):
    """Placement and size of the pods of one role."""

    replicas: int = Field(2, ge=0, le=64, description="Number of pods of this role.")
    resources: ResourceRequirements | None = Field(
        None, description="Compute resources (requests/limits) of the role's container; sensible defaults when unset.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Node labels the pods must match.")
    tolerations: list[dict[str, Any]] = Field(
        default_factory=list, description="Tolerations of the role's pods (core/v1 Toleration objects).",
        json_schema_extra={"items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}})
    affinity: dict[str, Any] | None = _free_form(
        "Affinity of the role's pods. When unset, pods of one role prefer distinct hosts and spread over zones.")


class MastersSpec(RoleSpec):
    replicas: int = Field(2, ge=1, le=9, description="Master pods; at least 2 for HA (one primary, the others secondary).")


class CoreappsSpec(RoleSpec):
    replicas: int = Field(2, ge=1, le=64, description="Coreapp pods; at least `shards`, plus standbys that take over a shard.")


# Webapp worker processes per pod: a count, or "auto" (one per CPU of the container's CPU limit).
WebappWorkers = Annotated[int | Literal["auto"], WithJsonSchema({
    "x-kubernetes-int-or-string": True,
    # JSON Schema checks the pattern on strings only and the bounds on integers only.
    "pattern": "^auto$", "minimum": 1, "maximum": 64,
})]


def _webapp_workers(value: int | str) -> int | str:
    if isinstance(value, int) and not 1 <= value <= 64:
        raise ValueError(f"workers must be between 1 and 64 or \"auto\", not {value}")
    return value


class WebappsSpec(RoleSpec):
    replicas: int = Field(1, ge=1, le=32, description="Webapp pods serving the REST API.")
    workers: Annotated[WebappWorkers, AfterValidator(_webapp_workers)] = Field(
        1, description="Processes per webapp pod sharing the API port (one Python process uses at most one "
                       "core). \"auto\": one per CPU of the container's CPU limit (resources.limits.cpu, rounded "
                       "up; the limit must be set); each process holds about 130Mi, the parent one too: with "
                       "resources unset the memory limit grows with the count.")

    model_config = ConfigDict(json_schema_extra=_rules(
        ("!has(self.workers) || type(self.workers) == int || (has(self.resources) && "
         "has(self.resources.limits) && 'cpu' in self.resources.limits)",
         "webapps.workers \"auto\" needs webapps.resources.limits.cpu: without a CPU limit it would start "
         "a worker per CPU of the node"),
    ))

    @model_validator(mode="after")
    def _auto_needs_a_cpu_limit(self) -> "WebappsSpec":
        limits = self.resources.limits if self.resources is not None else None
        if self.workers == "auto" and not (limits and "cpu" in limits):
            raise ValueError('webapps.workers "auto" needs webapps.resources.limits.cpu: without a CPU limit it '
                             "would start a worker per CPU of the node")
        return self


class MonitoringSpec(ApiModel):
    """Failure detection timings (seconds). Lower values fail over faster and cost more traffic."""

    heartbeat_interval: float = Field(5, ge=0.2, le=300, description="Seconds between heartbeats from every master to every coreapp.")
    unhealthy_interval: float = Field(30, ge=0.5, le=3600, description="Seconds without an answered heartbeat after which a primary coreapp is unhealthy.")
    db_heartbeat_interval: float = Field(60, ge=0.5, le=3600, description="Seconds between a coreapp's heartbeat rows in the database.")
    db_unhealthy_after: float = Field(120, ge=1, le=7200, description="Seconds without a database heartbeat after which a primary coreapp is unhealthy.")
    lease_duration: float = Field(15, ge=1, le=300, description="Seconds the primary master's Lease is valid without renewal.")
    renew_deadline: float = Field(10, ge=0.5, le=300, description="Seconds the primary master keeps trying to renew before it steps down.")
    retry_period: float = Field(2, ge=0.1, le=60, description="Seconds between Lease acquire or renew attempts.")

    model_config = ConfigDict(json_schema_extra=_rules(
        ("self.unhealthyInterval >= 2.0 * self.heartbeatInterval",
         "monitoring.unhealthyInterval must be at least twice monitoring.heartbeatInterval, so one lost heartbeat never triggers a failover"),
        ("self.dbUnhealthyAfter > self.dbHeartbeatInterval",
         "monitoring.dbUnhealthyAfter must be greater than monitoring.dbHeartbeatInterval"),
        ("self.leaseDuration > self.renewDeadline && self.renewDeadline > self.retryPeriod",
         "monitoring lease timings must satisfy leaseDuration > renewDeadline > retryPeriod"),
    ))


class SecretKeyRef(ApiModel):
    name: str = Field(..., pattern=DNS_LABEL_PATTERN, description="Secret name in the cluster's namespace.")
    username_key: str = Field("username", description="Key of the user name in the Secret.")
    password_key: str = Field("password", description="Key of the password in the Secret.")


class EmbeddedDatabaseSpec(ApiModel):
    image: str = Field("postgres:16", description="PostgreSQL image run by the operator as a StatefulSet.")
    storage_size: str = Field("10Gi", pattern=QUANTITY_PATTERN, description="Size of the database volume.")
    storage_class_name: str | None = Field(None, description="Storage class of the database volume; the cluster default when unset.")


class ExternalDatabaseSpec(ApiModel):
    host: str = Field(..., min_length=1, description="Host name of the PostgreSQL server.")
    port: int = Field(5432, ge=1, le=65535, description="Port of the PostgreSQL server.")
    database: str = Field("whatsapp", min_length=1, description="Database name.")
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = Field(
        "prefer", description="libpq sslmode used by every role.")
    credentials_secret: SecretKeyRef = Field(..., description="Secret holding the database user name and password.")


class DatabaseSpec(ApiModel):
    """The PostgreSQL database: run by the operator (embedded) or provided by you (external)."""

    mode: Literal["embedded", "external"] = Field(
        "embedded", description="embedded: the operator runs PostgreSQL; external: connect to `external`. Immutable.")
    embedded: EmbeddedDatabaseSpec = Field(default_factory=EmbeddedDatabaseSpec, description="Settings of the embedded database.")
    external: ExternalDatabaseSpec | None = Field(None, description="Connection to an external database (mode: external).")

    model_config = ConfigDict(json_schema_extra=_rules(
        ("self.mode != 'external' || has(self.external)",
         "database.external (host and credentialsSecret) is required when database.mode is external"),
        ("self.mode == oldSelf.mode",
         "database.mode is immutable: create a new WhatsAppCluster to change it"),
    ))


class MediaSpec(ApiModel):
    """The media volume shared by every role (the seeds' NFS directory)."""

    size: str = Field("10Gi", pattern=QUANTITY_PATTERN, description="Size of the media volume the operator creates.")
    storage_class_name: str | None = Field(None, description="Storage class of the media volume; the cluster default when unset.")
    access_mode: Literal["ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"] = Field(
        "ReadWriteMany", description="Access mode of the media volume; ReadWriteMany lets pods on different nodes share it.")
    existing_claim: str | None = Field(None, pattern=DNS_LABEL_PATTERN,
                                       description="Use this existing PersistentVolumeClaim instead of creating one.")


class ApiSpec(ApiModel):
    """How the webapps' REST API is exposed and secured."""

    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field("ClusterIP", description="Type of the API Service.")
    port: int = Field(9090, ge=1, le=65535, description="Port of the API Service (HTTPS).")
    tls_secret_name: str | None = Field(None, pattern=DNS_LABEL_PATTERN,
                                        description="kubernetes.io/tls Secret for the API; a self-signed one is generated when unset.")
    admin_secret_name: str | None = Field(None, pattern=DNS_LABEL_PATTERN,
                                          description="Secret with `username` and `password` of the API admin; generated when unset.")


# The keys of the Cloud API credentials Secret (spec.gateway.cloud.credentialsSecret).
CLOUD_ACCESS_TOKEN_KEY = "access-token"  # mounted into coreapps (they send) and webapps (registration, inbound media)
CLOUD_APP_SECRET_KEY = "app-secret"      # mounted into webapps only: they verify Meta's webhook signatures
CLOUD_VERIFY_TOKEN_KEY = "verify-token"  # mounted into webapps only: they answer Meta's subscription check


class CloudGatewaySpec(ApiModel):
    """Meta's WhatsApp Cloud API, which coreapps send through in gateway.mode cloud."""

    phone_number_id: str | None = Field(
        None, min_length=1, max_length=64, pattern=r"^[0-9]+$",
        description="The business phone number's ID in the Cloud API (WhatsApp Manager > API Setup). Required.")
    api_version: str = Field("v23.0", pattern=r"^v[0-9]+\.[0-9]+$", description="Graph API version, e.g. v23.0.")
    base_url: str = Field("https://graph.facebook.com", max_length=256, pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
                          description="Graph API base URL; change it only for an egress proxy or a test server.")
    credentials_secret: str | None = Field(
        None, pattern=DNS_LABEL_PATTERN,
        description=f"Secret in the cluster's namespace with keys `{CLOUD_ACCESS_TOKEN_KEY}` (coreapps send with "
                    f"it; webapps register the number and fetch inbound media), `{CLOUD_APP_SECRET_KEY}` and `{CLOUD_VERIFY_TOKEN_KEY}` (webapps check Meta's webhooks "
                    "with them). Required.")
    messages_per_second: int = Field(
        80, ge=1, le=1000,
        description="The phone number's send budget (Meta's default 80; up to 1000 once Meta raised it), "
                    "shared by the shards.")
    # The path of the callback URL given to Meta, on the API Service beside /v1; never under /v1/,
    # which belongs to the on-premises API.
    webhook_path: str = Field(
        "/cloud/webhook", max_length=128, pattern=r"^/[A-Za-z0-9._~/-]*$",
        description="Path of the webapps' endpoint for Meta's webhooks (the callback URL is https://<API "
                    "address><path>); not under /v1/.",
        json_schema_extra=_rules(("self != '/' && self != '/v1' && !self.startsWith('/v1/')",
                                  "gateway.cloud.webhookPath may not be / or lie under /v1/ (the on-premises API)")))

    @field_validator("webhook_path")
    @classmethod
    def _webhook_path_outside_v1(cls, path: str) -> str:
        # The same rule as the CEL above, for specs that never went through the API server.
        if path in ("/", "/v1") or path.startswith("/v1/"):
            raise ValueError("gateway.cloud.webhookPath may not be / or lie under /v1/ (the on-premises API)")
        return path


class GatewaySpec(ApiModel):
    """The WhatsApp server coreapps send through."""

    mode: Literal["sandbox", "external", "cloud"] = Field(
        "sandbox", description="sandbox: the operator also runs the built-in simulated server; external: a server "
                               "speaking the sandbox's protocol at `endpoint`; cloud: Meta's WhatsApp Cloud API "
                               "(`cloud`).")
    endpoint: str | None = Field(None, description="URL of the external gateway (mode: external).")
    cloud: CloudGatewaySpec | None = Field(None, description="The Cloud API account (mode: cloud).")

    model_config = ConfigDict(json_schema_extra=_rules(
        ("self.mode != 'external' || has(self.endpoint)", "gateway.endpoint is required when gateway.mode is external"),
        ("self.mode != 'cloud' || (has(self.cloud) && has(self.cloud.phoneNumberId) && "
         "has(self.cloud.credentialsSecret))",
         "gateway.cloud.phoneNumberId and gateway.cloud.credentialsSecret are required when gateway.mode is cloud"),
        ("self.mode == 'cloud' || !has(self.cloud)",
         "gateway.cloud is set only when gateway.mode is cloud"),
    ))

    @model_validator(mode="after")
    def _cloud_complete(self) -> "GatewaySpec":
        # The same rules as the CEL above, for specs that never went through the API server.
        if self.mode == "cloud" and (self.cloud is None or not self.cloud.phone_number_id
                                     or not self.cloud.credentials_secret):
            raise ValueError("gateway.cloud.phoneNumberId and gateway.cloud.credentialsSecret are required "
                             "when gateway.mode is cloud")
        if self.mode != "cloud" and self.cloud is not None:
            raise ValueError("gateway.cloud is set only when gateway.mode is cloud")
        return self


class WebhooksSpec(ApiModel):
    """Outgoing webhooks (inbound messages and statuses POSTed to the URL set through the API).
    Every one is signed: header `X-Wacluster-Signature-256: sha256=<hex HMAC-SHA256 of the raw
    body>` under the key in the Secret `<cluster>-webhook-signing` (key `key`)."""

    allowed_networks: list[str] = Field(
        default_factory=list, max_length=32,
        description="CIDRs a webhook URL may resolve to although private, loopback or link-local "
                    "(refused otherwise), e.g. 10.20.0.0/16 for a receiver inside your network.",
        json_schema_extra={"items": {"type": "string", "maxLength": 64,
                                     "pattern": r"^[0-9A-Fa-f:.]+/[0-9]{1,3}$"}})


class RetentionSpec(ApiModel):
    """How long settled data is kept; older rows (and media files) are pruned in small batches by
    the primary master and one webapp. Unsettled data (queued or claimed messages, webhook events
    still being retried) is never pruned, whatever its age. 0 keeps a kind of data forever."""

    # 30 days: a month to answer "was it delivered?", and idempotency keys (kept with their
    # message) remembered far beyond any client's retry window.
    messages_days: int = Field(30, ge=0, le=3650,
                               description="Days delivered, cancelled and failed messages are kept (from when they were sent).")
    # 7 days: a dead letter stays replayable for a week after the receiver gave up on it. Cloud
    # notifications are kept as long, so a payload Meta retries is still recognised.
    webhook_events_days: int = Field(7, ge=0, le=3650,
                                     description="Days delivered and dead webhook events, and Cloud API notifications "
                                                 "relayed to the business, are kept (from delivery, death or relay).")
    # 90 days: the promotion history is small and a quarter of it answers post-mortems and trends.
    failovers_days: int = Field(90, ge=0, le=3650, description="Days the shard promotion history is kept.")
    # 30 days: what the on-premises client kept uploaded media for.
    media_days: int = Field(30, ge=0, le=3650, description="Days uploaded media files and their records are kept.")


class NetworkPolicySpec(ApiModel):
    """NetworkPolicies the operator keeps per cluster: into each role only what must reach it
    (coreapps: masters and webapps; the database: the cluster's roles; the sandbox: coreapps).
    They take effect where the cluster's network plugin enforces NetworkPolicies."""

    enabled: bool = Field(True, description="Create and keep the NetworkPolicies; false removes them.")
    api_from: list[dict[str, Any]] = Field(
        default_factory=list, max_length=32,
        description="NetworkPolicyPeers (networking.k8s.io/v1) allowed to reach the webapps' API port; anyone when empty.",
        json_schema_extra={"items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}})
    metrics_from: list[dict[str, Any]] = Field(
        default_factory=list, max_length=32,
        description="NetworkPolicyPeers allowed to scrape every role's metrics port (e.g. Prometheus' namespace); anyone when empty.",
        json_schema_extra={"items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}})


class WhatsAppClusterSpec(ApiModel):
    """Desired state of a WhatsApp Business API cluster in High Availability / multiconnect mode."""

    version: str | None = Field(None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$",
                                description="Version of the cluster: the image tag every role runs. The operator's own version when unset.")
    image: ImageSpec = Field(default_factory=ImageSpec, description="Image repository and pull settings.")
    masters: MastersSpec = Field(default_factory=MastersSpec, description="Master pods: Lease-elected primary and secondaries.")
    coreapps: CoreappsSpec = Field(default_factory=CoreappsSpec, description="Coreapp pods: one per shard connected, the rest standby.")
    webapps: WebappsSpec = Field(default_factory=WebappsSpec, description="Webapp pods: the REST API, routed by the shard map.")
    shards: Literal[1, 2, 4, 8, 16, 32] = Field(1, description="Number of shards (multiconnect): 1, 2, 4, 8, 16 or 32.")
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec, description="Failure detection and Lease timings.")
    database: DatabaseSpec = Field(default_factory=DatabaseSpec, description="The PostgreSQL database.")
    media: MediaSpec = Field(default_factory=MediaSpec, description="The shared media volume.")
    api: ApiSpec = Field(default_factory=ApiSpec, description="Exposure and credentials of the REST API.")
    gateway: GatewaySpec = Field(default_factory=GatewaySpec, description="The WhatsApp server coreapps send through.")
    webhooks: WebhooksSpec = Field(default_factory=WebhooksSpec, description="Outgoing webhooks: where they may go.")
    retention: RetentionSpec = Field(default_factory=RetentionSpec,
                                     description="How long delivered messages, webhook events, failovers and media are kept.")
    network_policy: NetworkPolicySpec = Field(default_factory=NetworkPolicySpec,
                                              description="NetworkPolicies limiting what reaches each role.")
    deletion_policy: Literal["Retain", "Delete"] = Field(
        "Retain", description="On deletion: Retain keeps the volumes and database data; Delete removes them too.")
    log_format: Literal["text", "json"] = Field(
        "text", description="How every role logs: text (one readable line a record) or json (one object a line "
                            "with ts, level, logger, message, cluster, role, pod, and shard, epoch, term or "
                            "message_id where a line is about one).")

    model_config = ConfigDict(json_schema_extra=_rules(
        ("self.coreapps.replicas >= self.shards",
         "coreapps.replicas must be at least shards: every shard needs its own coreapp"),
    ))


class Condition(ApiModel):
    type: str = Field(..., description="Condition type: Ready, Progressing, Degraded, UpgradeInProgress, Fenced or Switchover.")
    status: Literal["True", "False", "Unknown"] = Field(..., description="Status of the condition.")
    reason: str = Field(..., description="One CamelCase word saying why.")
    message: str = Field("", description="What happened, for a human.")
    observed_generation: int | None = Field(None, description="The spec generation this condition was computed for.")
    last_transition_time: str | None = Field(None, description="When the status last changed (RFC 3339).")


class ShardStatus(ApiModel):
    shard: int = Field(..., description="Shard number.")
    coreapp: str | None = Field(None, description="Coreapp pod owning the shard; empty when unassigned.")
    epoch: int = Field(0, description="Promotion epoch of the current owner.")
    since: str | None = Field(None, description="When the current owner was promoted (RFC 3339).")


class RoleStatus(ApiModel):
    replicas: int = Field(0, description="Desired pods.")
    ready: int = Field(0, description="Ready pods.")


class CertificateStatus(ApiModel):
    not_before: str = Field(..., description="Start of the generated API certificate's validity (RFC 3339).")
    not_after: str = Field(..., description="End of the generated API certificate's validity (RFC 3339).")
    renew_at: str = Field(..., description="When the operator renews it: two thirds into its validity (RFC 3339).")


class WhatsAppClusterStatus(ApiModel):
    """Observed state, written by the operator."""

    observed_generation: int | None = Field(None, description="The spec generation last reconciled.")
    phase: str | None = Field(None, description="Pending, Progressing, Upgrading, Ready, Degraded or Failed.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready, Progressing, Degraded, UpgradeInProgress.")
    version: str | None = Field(None, description="Version every role currently runs.")
    target_version: str | None = Field(None, description="Version being rolled out during an upgrade.")
    masters: RoleStatus | None = Field(None, description="Master pod counts.")
    coreapps: RoleStatus | None = Field(None, description="Coreapp pod counts.")
    webapps: RoleStatus | None = Field(None, description="Webapp pod counts.")
    primary_master: str | None = Field(None, description="Holder of the master Lease.")
    shards: list[ShardStatus] = Field(default_factory=list, description="Shard map mirrored from the database.")
    ready_summary: str | None = Field(None, description="Ready pods over desired pods, for `kubectl get`.")
    api_certificate: CertificateStatus | None = Field(
        None, description="The API certificate the operator generated (absent with api.tlsSecretName).")
