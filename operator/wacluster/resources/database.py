"""The embedded PostgreSQL: a one-replica StatefulSet with a volume, and its Service."""

from __future__ import annotations

from typing import Any

from wacluster.api.interprocess import Port, selector
from wacluster.resources.naming import POSTGRES_UID, labels
from wacluster.resources.pods import ClusterView, container_security, pod_security

# The component label of the embedded PostgreSQL's objects (its NetworkPolicy selects by it).
DATABASE_COMPONENT = "database"


def database_objects(view: ClusterView) -> list[dict[str, Any]]:
    if view.spec.database.mode != "embedded":
        return []
    names = view.names
    embedded = view.spec.database.embedded
    claim: dict[str, Any] = {
        "metadata": {"name": "data", "labels": labels(view.name, DATABASE_COMPONENT)},
        "spec": {"accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": embedded.storage_size}}},
    }
    if embedded.storage_class_name:
        claim["spec"]["storageClassName"] = embedded.storage_class_name
    secret_env = lambda key: {"secretKeyRef": {"name": names.database_secret, "key": key}}  # noqa: E731
    container = {
        "name": "postgres",
        "image": embedded.image,
        "imagePullPolicy": view.spec.image.pull_policy,
        "env": [
            {"name": "POSTGRES_USER", "valueFrom": secret_env("username")},
            {"name": "POSTGRES_PASSWORD", "valueFrom": secret_env("password")},
            {"name": "POSTGRES_DB", "value": "whatsapp"},
            {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
        ],
        "ports": [{"name": "postgres", "containerPort": Port.DATABASE}],
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": container_security(),
        "readinessProbe": {"exec": {"command": ["pg_isready", "-U", "postgres", "-h", "127.0.0.1"]},
                           "periodSeconds": 5},
        "livenessProbe": {"tcpSocket": {"port": "postgres"}, "periodSeconds": 10, "failureThreshold": 6},
        "volumeMounts": [
            {"name": "data", "mountPath": "/var/lib/postgresql/data"},
            {"name": "run", "mountPath": "/var/run/postgresql"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    statefulset = {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": names.database, "labels": labels(view.name, DATABASE_COMPONENT)},
        "spec": {
            "serviceName": names.database,
            "replicas": 1,
            "selector": {"matchLabels": selector(view.name, DATABASE_COMPONENT)},
            # The claim outlives the StatefulSet: deletionPolicy decides its fate, not the GC.
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "template": {
                "metadata": {"labels": labels(view.name, DATABASE_COMPONENT)},
                "spec": {
                    "securityContext": pod_security(POSTGRES_UID),
                    "automountServiceAccountToken": False,
                    "containers": [container],
                    "volumes": [{"name": "run", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
                },
            },
            "volumeClaimTemplates": [claim],
        },
    }
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": names.database, "labels": labels(view.name, DATABASE_COMPONENT)},
        "spec": {"selector": selector(view.name, DATABASE_COMPONENT),
                 "ports": [{"name": "postgres", "port": Port.DATABASE, "targetPort": "postgres"}]},
    }
    return [statefulset, service]
