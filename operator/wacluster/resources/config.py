"""The runtime settings ConfigMap, the media claim and the dbupgrade Job."""

from __future__ import annotations

import json
from typing import Any

from wacluster.api.interprocess import Env, Role
from wacluster.resources.naming import labels
from wacluster.resources.pods import ClusterView, runtime_container, runtime_pod


def runtime_settings(view: ClusterView) -> dict[str, Any]:
    """The settings the spec owns; the primary master copies them into the settings table."""
    m, r = view.spec.monitoring, view.spec.retention
    return {
        "shards": view.spec.shards,
        "heartbeat_interval": m.heartbeat_interval,
        "unhealthy_interval": m.unhealthy_interval,
        "db_heartbeat_interval": m.db_heartbeat_interval,
        "db_unhealthy_after": m.db_unhealthy_after,
        "lease_duration": m.lease_duration,
        "renew_deadline": m.renew_deadline,
        "retry_period": m.retry_period,
        "retention_messages_days": r.messages_days,
        "retention_webhook_events_days": r.webhook_events_days,
        "retention_failovers_days": r.failovers_days,
        "retention_media_days": r.media_days,
    }


def settings_config_map(view: ClusterView) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": view.names.settings, "labels": labels(view.name, "settings")},
        # Mounted as a volume (not env) so a spec change reaches running pods without a restart.
        "data": {"settings.json": json.dumps(runtime_settings(view), sort_keys=True, indent=2)},
    }


def media_claim(view: ClusterView) -> dict[str, Any] | None:
    media = view.spec.media
    if media.existing_claim:
        return None
    claim: dict[str, Any] = {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": view.names.media_claim, "labels": labels(view.name, "media")},
        "spec": {"accessModes": [media.access_mode], "resources": {"requests": {"storage": media.size}}},
    }
    if media.storage_class_name:
        claim["spec"]["storageClassName"] = media.storage_class_name
    return claim


def dbupgrade_job(view: ClusterView, version: str) -> dict[str, Any]:
    """Applies the schema of `version` and exits 0 (the seeds' dbupgrade container)."""
    target = ClusterView(view.name, view.namespace, view.uid, view.spec, version)
    container = runtime_container(target, Role.DBUPGRADE, [Role.DBUPGRADE], [], None)
    container.pop("readinessProbe")
    container.pop("livenessProbe")
    container["ports"] = []
    container["env"].append({"name": Env.EXIT_ON_SUCCESS, "value": "true"})
    pod = runtime_pod(target, Role.DBUPGRADE, None, container)
    pod["spec"]["restartPolicy"] = "Never"
    pod["spec"]["volumes"] = [v for v in pod["spec"]["volumes"] if v["name"] != "media"]
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "media"]
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": view.names.dbupgrade_job(version),
                     "labels": labels(view.name, Role.DBUPGRADE, version)},
        "spec": {"backoffLimit": 2, "template": pod},
    }
