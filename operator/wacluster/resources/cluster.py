"""Everything a WhatsAppCluster owns, as one list of manifests."""

from __future__ import annotations

from typing import Any

from wacluster.resources.access import runtime_access
from wacluster.resources.config import dbupgrade_job, media_claim, settings_config_map
from wacluster.resources.database import database_objects
from wacluster.resources.network import network_policies
from wacluster.resources.pods import ClusterView
from wacluster.resources.workloads import (
    coreapp_deployment, disruption_budgets, master_deployment, sandbox_deployment, services,
    webapp_deployment,
)


def owned_objects(view: ClusterView, job_version: str) -> list[dict[str, Any]]:
    """Objects owned by the cluster (garbage-collected with it), in apply order."""
    objects: list[dict[str, Any]] = [*runtime_access(view), settings_config_map(view)]
    objects += database_objects(view)
    objects.append(dbupgrade_job(view, job_version))
    objects += [master_deployment(view), coreapp_deployment(view), webapp_deployment(view)]
    if view.spec.gateway.mode == "sandbox":
        objects.append(sandbox_deployment(view))
    objects += services(view)
    objects += disruption_budgets(view)
    objects += network_policies(view)
    return objects


def unowned_objects(view: ClusterView) -> list[dict[str, Any]]:
    """Objects holding data, kept or deleted by deletionPolicy rather than by the GC."""
    claim = media_claim(view)
    return [claim] if claim else []
