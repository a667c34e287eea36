"""kopf handlers: each turns an event into a call of a plain function (see reconcile.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import kopf

from wacluster.api.interprocess import FENCED_ANNOTATION, MANAGED_BY, SWITCHOVER_ANNOTATION, Label
from wacluster.api.v1alpha1 import GROUP, KIND, PLURAL, VERSION, WhatsAppClusterSpec
from wacluster.controller import metrics
from wacluster.controller.reconcile import reconcile
from wacluster.domain.apply_memory import ApplyMemory, object_key
from wacluster.kube.connection import api_client
from wacluster.kube.objects import FIELD_MANAGER, Objects
from wacluster.resources.pods import ClusterView
from wacluster.resources.secrets import retained_names

log = logging.getLogger("wacluster.controller")

WATCH_INACTIVITY_TIMEOUT = 70.0  # above the 60 s bookmark period, below the 75 s event cache
# Level-based safety net; events (the cluster's spec or someone else's status write, every change
# of its children) wake the loop much sooner, so a pass is due by time only as a check: every
# 5 minutes, or 30 s after a failed pass. Every 30 s, even passes that apply nothing (reads,
# create-if-absent of the Secrets) cost 50 idle clusters several % of a core.
RESYNC_SECONDS = 300.0
RETRY_SECONDS = 30.0
# Passes running at once. 50 clusters created together each ran a pass per child event, all at
# once: the API answers they held at the peak stayed in the operator's memory (RSS) afterwards.
MAX_CONCURRENT_PASSES = 8
_pass_slots = asyncio.Semaphore(MAX_CONCURRENT_PASSES)
_triggers: dict[tuple[str, str], asyncio.Event] = {}
_phases: dict[tuple[str, str], str] = {}
_written_status: dict[tuple[str, str], dict[str, Any]] = {}  # the status each cluster's last pass computed
_maintenance_seen: dict[tuple[str, str], tuple[str | None, ...]] = {}  # fence/switchover annotations last seen
_memory = ApplyMemory(FIELD_MANAGER)
_MANAGED = {Label.MANAGED_BY: MANAGED_BY}
CHILD_KINDS = [("apps", "v1", "deployments"), ("apps", "v1", "statefulsets"), ("", "v1", "services"),
               ("", "v1", "configmaps"), ("batch", "v1", "jobs"), ("policy", "v1", "poddisruptionbudgets"),
               ("", "v1", "serviceaccounts"), ("rbac.authorization.k8s.io", "v1", "roles"),
               ("rbac.authorization.k8s.io", "v1", "rolebindings"), ("coordination.k8s.io", "v1", "leases"),
               ("networking.k8s.io", "v1", "networkpolicies")]


def trigger(namespace: str | None, name: str | None) -> None:
    event = _triggers.get((namespace or "", name or ""))
    if event is not None:
        event.set()


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # The API client lives on kopf's own event loop (kopf runs in a thread of its own).
    memo.api = await api_client()
    memo.objects = Objects(memo.api)
    # Progress in annotations only: the CRD's status schema is ours and would prune kopf's fields.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="wacluster.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="wacluster.io", key="last-handled-configuration")
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 120
    # A stream that delivers nothing (not even the API server's ~60 s bookmarks) is half-open:
    # kopf reopens it (1.44+); the operator's /healthz also checks that kopf still sees events.
    settings.watching.inactivity_timeout = WATCH_INACTIVITY_TIMEOUT
    settings.networking.request_timeout = 30
    # The namespaces are given (or all); the CRDs are the chart's. Scanning for either needs a
    # cluster-wide list the operator's least-privilege RBAC does not grant: kopf retried it for
    # about 54 s before a new leader's watches started.
    settings.scanning.disabled = True


@kopf.on.cleanup()
async def close_client(memo: kopf.Memo, **_: Any) -> None:
    await memo.api.close()


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10, backoff=5)
async def run_cluster(name: str, namespace: str, memo: kopf.Memo, logger, **_: Any) -> None:
    """One loop per WhatsAppCluster: reconcile, then sleep until something relevant changes."""
    key = (namespace, name)
    event = _triggers.setdefault(key, asyncio.Event())
    objects: Objects = memo.objects
    try:
        while True:
            event.clear()
            async with _pass_slots:
                body = await objects.get(f"{GROUP}/{VERSION}", KIND, name, namespace)
                if body is None or body["metadata"].get("deletionTimestamp"):
                    return
                failed = await reconcile_once(objects, body, memo.default_version, logger)
            try:
                await asyncio.wait_for(event.wait(), timeout=RETRY_SECONDS if failed else RESYNC_SECONDS)
            except asyncio.TimeoutError:
                pass
    finally:
        _triggers.pop(key, None)
        _phases.pop(key, None)
        _written_status.pop(key, None)
        # A deleted cluster's certificate would otherwise be alerted on months later.
        with contextlib.suppress(KeyError):
            metrics.API_CERTIFICATE_EXPIRY.remove(namespace, name)
        _maintenance_seen.pop(key, None)
        _memory.forget_cluster(namespace, name)
        _publish_phases()


async def reconcile_once(objects: Objects, body: dict[str, Any], default_version: str, logger) -> bool:
    """One pass; returns whether it failed (then the next one comes sooner)."""
    meta = body["metadata"]
    started = time.monotonic()
    try:
        result = await reconcile(objects, body, default_version, _memory)
    except Exception as exc:
        metrics.RECONCILES.labels(result="error").inc()
        logger.exception("reconcile of %s/%s failed: %s", meta["namespace"], meta["name"], exc)
        try:
            await objects.post_event(body, "Warning", "ReconcileError", str(exc))
        except Exception:
            pass
        return True
    finally:
        metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
    metrics.RECONCILES.labels(result="applied" if not result.errors else "apply_failed").inc()
    key = (meta["namespace"], meta["name"])
    _written_status[key] = result.status
    if result.status != _status_part(body, result.status):
        await objects.patch_status(f"{GROUP}/{VERSION}", KIND, meta["name"], meta["namespace"], result.status)
    for kind, reason, message in result.events:
        try:
            await objects.post_event(body, kind, reason, message)
        except Exception as exc:  # an event is a courtesy; never fail a reconcile for it
            logger.warning("could not post event %s: %s", reason, exc)
    _phases[key] = result.status.get("phase") or "Unknown"
    _publish_phases()
    logger.debug("pass over %s/%s: %d applied, %d pruned, phase %s", meta["namespace"], meta["name"],
                 result.applied, result.pruned, _phases[key])
    return bool(result.errors)


def _status_part(body: Any, like: dict[str, Any]) -> dict[str, Any]:
    """The fields of the body's status that `like` has (other writers' fields aside)."""
    return {k: v for k, v in (body.get("status") or {}).items() if k in like}


def _publish_phases() -> None:
    counts: dict[str, int] = {}
    for phase in _phases.values():
        counts[phase] = counts.get(phase, 0) + 1
    for phase in ("Pending", "Progressing", "Upgrading", "Ready", "Degraded", "Failed", "Unknown"):
        metrics.CLUSTERS.labels(phase=phase).set(counts.get(phase, 0))


@kopf.on.event(GROUP, VERSION, PLURAL)
async def cluster_event(body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    """Spec changes wake the loop, and so does a status someone else wrote (e.g. a certificate
    record); our own status writes do not: they match what the last pass computed. Async, so it
    runs on the loop whose Events it sets (kopf runs plain functions in threads)."""
    observed = (body.get("status") or {}).get("observedGeneration")
    written = _written_status.get((namespace, name))
    annotations = body["metadata"].get("annotations") or {}
    maintenance = tuple(annotations.get(key) for key in (FENCED_ANNOTATION, SWITCHOVER_ANNOTATION))
    requested = _maintenance_seen.get((namespace, name), maintenance) != maintenance  # not a generation change
    _maintenance_seen[(namespace, name)] = maintenance
    if observed != body["metadata"].get("generation") or body["metadata"].get("deletionTimestamp") or requested \
            or (written is not None and _status_part(body, written) != written):
        trigger(namespace, name)


def _register_child_watch(group: str, version: str, plural: str) -> None:
    @kopf.on.event(group, version, plural, labels=_MANAGED, id=f"child-{plural}")
    async def child_event(type: str | None, body: kopf.Body, labels: kopf.Labels, namespace: str,
                          **_: Any) -> None:
        """What the watch shows of an owned object is what decides its next apply (drift or
        deletion); any change of a child may change the cluster's status too."""
        cluster = labels.get(Label.CLUSTER)
        key = object_key(body)
        if type == "DELETED":
            _memory.deleted(key, cluster_alive=(namespace, cluster or "") in _triggers)
        else:
            _memory.seen(key, body, time.monotonic())
        trigger(namespace, cluster)


for _group, _version, _plural in CHILD_KINDS:
    _register_child_watch(_group, _version, _plural)


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def cluster_deleted(body: kopf.Body, name: str, namespace: str, memo: kopf.Memo, logger, **_: Any) -> None:
    """Apply deletionPolicy; owned objects are left to the garbage collector."""
    spec = WhatsAppClusterSpec.model_validate(dict(body.get("spec") or {}))
    view = ClusterView(name, namespace, body["metadata"]["uid"], spec, spec.version or memo.default_version)
    kept = retained_names(view)
    if spec.deletion_policy == "Delete":
        objects: Objects = memo.objects
        for kind, obj_name in kept:
            await objects.delete("v1", kind, obj_name, namespace)
        logger.info("deleted the data of %s/%s: %s", namespace, name, ", ".join(n for _, n in kept))
    else:
        logger.info("kept the data of %s/%s for re-attachment: %s", namespace, name,
                    ", ".join(n for _, n in kept) or "nothing")
