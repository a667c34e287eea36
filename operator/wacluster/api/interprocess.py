"""Every name two processes must agree on, in one place: the environment the operator's pods set
and the roles read, the NOTIFY kinds on the database channel, the ports, the labels and annotation,
and the Lease names. Producers and consumers both import these; neither side spells them out.

Plain `str`/`int` constants (not enums) where they end up in Kubernetes manifests, so the
manifests stay plain data for YAML and JSON alike.
"""

from __future__ import annotations

import enum


class Env:
    """Environment variables: who sets each one is noted; the roles and the operator read them."""

    # Set by the operator's pod builders (wacluster.resources) on every runtime role.
    CLUSTER = "WACLUSTER_CLUSTER"
    NAMESPACE = "WACLUSTER_NAMESPACE"  # the chart sets it on the operator too: its own Lease lives there
    POD_NAME = "WACLUSTER_POD_NAME"    # the chart sets it on the operator too: its Lease identity
    POD_IP = "WACLUSTER_POD_IP"
    VERSION = "WACLUSTER_VERSION"
    LEASE_NAME = "WACLUSTER_LEASE_NAME"
    GATEWAY_URL = "WACLUSTER_GATEWAY_URL"
    SETTINGS_FILE = "WACLUSTER_SETTINGS_FILE"
    DB_HOST = "WACLUSTER_DB_HOST"
    DB_PORT = "WACLUSTER_DB_PORT"
    DB_NAME = "WACLUSTER_DB_NAME"
    DB_SSLMODE = "WACLUSTER_DB_SSLMODE"
    DB_USER = "WACLUSTER_DB_USER"
    DB_PASSWORD = "WACLUSTER_DB_PASSWORD"
    # Set by the pod builders on masters, coreapps and webapps only: the bearer token of the
    # coreapps' control port (the Secret <cluster>-internal).
    INTERNAL_TOKEN = "WACLUSTER_INTERNAL_TOKEN"
    # Set by the pod builders on coreapps: which WhatsApp server they send through ("sandbox":
    # GATEWAY_URL's websocket; "cloud": Meta's Cloud API over HTTPS) and the Cloud settings.
    GATEWAY_MODE = "WACLUSTER_GATEWAY_MODE"
    CLOUD_BASE_URL = "WACLUSTER_CLOUD_BASE_URL"
    CLOUD_API_VERSION = "WACLUSTER_CLOUD_API_VERSION"
    CLOUD_PHONE_NUMBER_ID = "WACLUSTER_CLOUD_PHONE_NUMBER_ID"
    CLOUD_MESSAGES_PER_SECOND = "WACLUSTER_CLOUD_MESSAGES_PER_SECOND"
    CLOUD_ACCESS_TOKEN = "WACLUSTER_CLOUD_ACCESS_TOKEN"  # from the credentials Secret; never logged
    # Set by the pod builders on webapps in cloud mode (CLOUD_PHONE_NUMBER_ID too): the endpoint
    # Meta posts the Cloud API's webhooks to (runtime/webapp/cloud_webhooks.py). The app secret
    # and verify token come from the credentials Secret; never logged.
    CLOUD_APP_SECRET = "WACLUSTER_CLOUD_APP_SECRET"
    CLOUD_VERIFY_TOKEN = "WACLUSTER_CLOUD_VERIFY_TOKEN"
    CLOUD_WEBHOOK_PATH = "WACLUSTER_CLOUD_WEBHOOK_PATH"
    # Set by the pod builders on the webapp only.
    TLS_DIR = "WACLUSTER_TLS_DIR"
    ADMIN_USERNAME = "WACLUSTER_ADMIN_USERNAME"
    ADMIN_PASSWORD = "WACLUSTER_ADMIN_PASSWORD"
    WEBHOOK_SIGNING_KEY = "WACLUSTER_WEBHOOK_SIGNING_KEY"            # HMAC key of outgoing webhooks
    WEBHOOK_ALLOWED_NETWORKS = "WACLUSTER_WEBHOOK_ALLOWED_NETWORKS"  # CIDRs, comma-separated
    # Set by the pod builders on the dbupgrade Job; the seeds' name, hence no prefix.
    EXIT_ON_SUCCESS = "EXIT_ON_SUCCESS"

    # Set by the pod builders on every runtime role (spec.logFormat); the operator reads it too,
    # under its --log-format flag: "text" (default) or "json", one object a line.
    LOG_FORMAT = "WACLUSTER_LOG_FORMAT"

    # Set by the Helm chart on the operator.
    DEFAULT_VERSION = "WACLUSTER_DEFAULT_VERSION"

    # Set only outside Kubernetes: the local test harness, the benchmarks, a run by hand.
    DATABASE_URL = "WACLUSTER_DATABASE_URL"      # instead of the DB_* parts
    LISTEN_HOST = "WACLUSTER_LISTEN_HOST"        # every role binds 0.0.0.0 in a pod
    ADVERTISE_HOST = "WACLUSTER_ADVERTISE_HOST"  # instead of POD_IP
    EVENT_LOOP = "WACLUSTER_EVENT_LOOP"          # "asyncio" instead of uvloop
    METRICS_ADDR = "WACLUSTER_METRICS_ADDR"      # the operator's metrics bind address


class Port:
    """TCP ports a pod spec declares and the process listening there defaults to."""

    API = 9090               # webapp HTTPS API
    CONTROL = 6250           # coreapp control endpoint: master heartbeats, messages routed by webapps
    GATEWAY = 6200           # sandbox WhatsApp server
    METRICS = 9100           # every role: /metrics, /livez, /readyz
    OPERATOR_METRICS = 8080  # the operator's /metrics (the chart's metrics.port)
    OPERATOR_HEALTH = 8081   # the operator's /healthz and /readyz (the chart's health.port)
    DATABASE = 5432          # PostgreSQL


class PortName:
    """Names of those ports in pod specs and Services; probes, the chart's ServiceMonitor
    (`metrics`) and the support bundle's API proxy (`https`) refer to them by name."""

    API = "https"
    CONTROL = "control"
    GATEWAY = "gateway"
    METRICS = "metrics"


class Role:
    """The runtime roles: the `wacluster` subcommand each pod runs and its component label."""

    MASTER = "master"
    COREAPP = "coreapp"
    WEBAPP = "webapp"
    SANDBOX = "sandbox"
    DBUPGRADE = "dbupgrade"


# Where the pod builders mount the media volume and the webapp stores media by default.
MEDIA_DIR = "/media"


class Label:
    """Label keys on everything the operator creates and on the master's Lease."""

    NAME = "app.kubernetes.io/name"
    CLUSTER = "app.kubernetes.io/instance"
    COMPONENT = "app.kubernetes.io/component"
    PART_OF = "app.kubernetes.io/part-of"
    MANAGED_BY = "app.kubernetes.io/managed-by"
    VERSION = "app.kubernetes.io/version"


APP_NAME = "whatsapp"               # Label.NAME of a cluster's objects
PART_OF = "wacluster"               # Label.PART_OF; the chart's ServiceMonitor selects on it
MANAGED_BY = "wacluster-operator"   # Label.MANAGED_BY; the operator watches children (and Leases) by it
OPERATOR_APP = "wacluster-operator"  # Label.NAME of the operator (the chart's labels)

# The master publishes the shard map on its Lease; the operator mirrors it into the status.
SHARD_MAP_ANNOTATION = "wacluster.io/shard-map"

# Maintenance requests a user (or `kubectl wac`) writes on the WhatsAppCluster; the primary
# master acts on them and answers on its Lease; the operator mirrors both into conditions.
SWITCHOVER_ANNOTATION = "wacluster.io/switchover"        # JSON {"shard", "to"?, "requestedAt"}
FENCED_ANNOTATION = "wacluster.io/fenced"                # comma-separated coreapp names
SWITCHOVER_STATUS_ANNOTATION = "wacluster.io/switchover-status"  # on the master Lease: the answer
SHARD_DETAILS_ANNOTATION = "wacluster.io/shard-details"  # on the master Lease: leases, backlog, nodes

# The operator's own Lease: one active replica at a time.
OPERATOR_LEASE = "wacluster-operator"


def master_lease(cluster: str) -> str:
    """The Lease a cluster's masters campaign for; the operator reads its holder and annotation."""
    return f"{cluster}-master"


def selector(cluster: str, component: str) -> dict[str, str]:
    """The labels that pick one component of one cluster (Deployments, Services, pod lists)."""
    return {Label.CLUSTER: cluster, Label.COMPONENT: component}


def label_selector(labels: dict[str, str]) -> str:
    """`labels` in the API's `labelSelector` query syntax."""
    return ",".join(f"{key}={value}" for key, value in labels.items())


# LISTEN/NOTIFY channel of a cluster's database: shard-map, handoff, account and settings changes.
CHANNEL = "wacluster"


class NotifyKind(enum.StrEnum):
    """The `kind` of a NOTIFY payload on CHANNEL."""

    SHARD_MAP = "shard_map"  # a shard was promoted or the shard count changed
    HANDOFF = "handoff"      # a coreapp released its shard on a planned stop
    ACCOUNT = "account"      # the account was registered
    SETTINGS = "settings"    # settings changed
    # Never sent: the listener reports these itself.
    LISTENING = "listening"  # (re)connected; anything sent meanwhile was missed, so reload
    UNKNOWN = "unknown"      # a payload that is not JSON
