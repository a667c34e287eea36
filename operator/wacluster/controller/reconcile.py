"""One level-based reconciliation of a WhatsAppCluster: read the world, apply the desired
objects, prune the ones no longer wanted, and compute the status. Safe to run any number of
times, from any point, by a freshly restarted operator."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from wacluster.api.interprocess import (FENCED_ANNOTATION, MANAGED_BY, SHARD_MAP_ANNOTATION, SWITCHOVER_ANNOTATION,
                                        SWITCHOVER_STATUS_ANNOTATION, Label, Role)
from wacluster.api.v1alpha1 import GROUP, KIND, VERSION, WhatsAppClusterSpec
from wacluster.crypto.credentials import random_password, self_signed_certificate
from wacluster.controller.metrics import API_CERTIFICATE_EXPIRY, APPLIES, APPLIES_SKIPPED
from wacluster.domain.apply_memory import APPLIED_HASH_ANNOTATION, ApplyMemory, desired_hash, object_key
from wacluster.domain.certificates import CertificateRecord, certificate_action
from wacluster.domain.cluster_status import Observation, RoleCounts, compute_status, merge_conditions
from wacluster.domain.maintenance import parse_fenced
from wacluster.domain.upgrade import JobPhase, Rollout, plan_rollout
from wacluster.kube.objects import FIELD_MANAGER, Objects, owner_reference
from wacluster.resources.cluster import owned_objects, unowned_objects
from wacluster.resources.naming import Names
from wacluster.resources.pods import ClusterView
from wacluster.resources.secrets import api_hosts, api_tls_secret, generated_secrets

log = logging.getLogger("wacluster.controller")

# Kinds the operator prunes when they are no longer desired (never claims or data secrets).
PRUNABLE = [("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("v1", "Service"),
            ("policy/v1", "PodDisruptionBudget"), ("batch/v1", "Job"), ("v1", "ConfigMap"),
            ("networking.k8s.io/v1", "NetworkPolicy")]


@dataclass
class ReconcileResult:
    status: dict[str, Any]
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    errors: list[str] = field(default_factory=list)
    applied: int = 0   # server-side applies this pass made
    pruned: int = 0    # objects this pass deleted as no longer desired


def job_phase(job: dict[str, Any] | None) -> JobPhase:
    if job is None:
        return "Absent"
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "Succeeded"
        if cond.get("status") == "True" and cond.get("type") in ("Failed", "FailureTarget"):
            return "Failed"
    return "Running"


def _role_counts(deployment: dict[str, Any] | None, desired: int) -> RoleCounts:
    if deployment is None:
        return RoleCounts(desired, 0, 0)
    status = deployment.get("status") or {}
    current = status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
    return RoleCounts(desired, status.get("readyReplicas", 0) or 0,
                      (status.get("updatedReplicas", 0) or 0) if current else 0)


async def reconcile(objects: Objects, body: dict[str, Any], default_version: str,
                    memory: ApplyMemory | None = None) -> ReconcileResult:
    """`memory` is what this process applied before; without it every owned object is applied."""
    memory = memory if memory is not None else ApplyMemory(FIELD_MANAGER)
    meta = body["metadata"]
    name, namespace, uid = meta["name"], meta["namespace"], meta["uid"]
    generation = meta.get("generation", 1)
    spec = WhatsAppClusterSpec.model_validate(body.get("spec") or {})
    old_status = body.get("status") or {}
    names = Names(name)
    target = spec.version or default_version
    deployed = old_status.get("version")

    job = await objects.get("batch/v1", "Job", names.dbupgrade_job(target), namespace)
    rollout = plan_rollout(target, deployed, job_phase(job))
    view = ClusterView(name, namespace, uid, spec, rollout.run_version)
    owner = owner_reference(f"{GROUP}/{VERSION}", KIND, name, uid)
    result = ReconcileResult(status={})

    for secret in generated_secrets(view, random_password):
        data_secret = secret["metadata"]["name"] == names.database_secret
        await objects.create_if_absent(secret, namespace, None if data_secret else owner)
    certificate_status = None
    if not spec.api.tls_secret_name:
        certificate_status = await _generated_api_certificate(objects, view, owner, old_status, result)
    for obj in unowned_objects(view):
        await objects.create_if_absent(obj, namespace)

    desired = owned_objects(view, rollout.job_version)
    for obj in desired:
        try:
            if obj["kind"] == "Job":
                await objects.create_if_absent(obj, namespace, owner)  # a Job's template is immutable
            elif await _apply_if_changed(objects, obj, namespace, owner, memory):
                result.applied += 1
        except ApiException as exc:
            message = _api_message(exc)
            result.errors.append(f"{obj['kind']} {obj['metadata']['name']}: {message}")
    wanted = frozenset((o["kind"], o["metadata"]["name"]) for o in desired) | {("Job", names.dbupgrade_job(target))}
    if memory.prune_needed(namespace, name, wanted):
        result.pruned, complete = await _prune(objects, namespace, name, wanted)
        if complete:
            memory.pruned(namespace, name, wanted)

    observation = await _observe(objects, view, spec, generation, rollout, meta.get("annotations") or {})
    status = compute_status(observation)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    status["conditions"] = merge_conditions(old_status.get("conditions") or [], status["conditions"], now)
    if certificate_status:
        status["apiCertificate"] = certificate_status
        API_CERTIFICATE_EXPIRY.labels(namespace=namespace, cluster=name).set(
            CertificateRecord.from_status(certificate_status).not_after.timestamp())
    result.events = _events(old_status, status, rollout) + result.events
    if result.errors:
        message = "; ".join(result.errors)
        status["phase"] = "Failed"
        for cond in status["conditions"]:
            if cond["type"] == "Degraded":
                cond.update(status="True", reason="ApplyFailed", message=message)
        if _condition(old_status, "Degraded").get("message") != message:
            # Once per distinct rejection, not at every periodic reconcile.
            result.events.append(("Warning", "ApplyRejected", message))
    result.status = status
    return result


async def _generated_api_certificate(objects: Objects, view: ClusterView, owner: dict[str, Any],
                                     old_status: dict[str, Any], result: ReconcileResult) -> dict[str, str]:
    """Create the generated API certificate if absent and renew it at two thirds of its life.
    The operator never reads Secrets: what it knows of the certificate is in the status."""
    generated = self_signed_certificate(api_hosts(view))
    secret = api_tls_secret(view, generated)
    created = await objects.create_if_absent(secret, view.namespace, owner)
    record = CertificateRecord.from_status(old_status.get("apiCertificate"))
    now = dt.datetime.now(dt.timezone.utc)
    action = certificate_action(record, created, now)
    if action == "keep":
        return record.to_status()
    if action == "renew":
        await objects.apply(secret, view.namespace, owner)
        expiry = f"expired {record.not_after:%Y-%m-%d}" if record and record.not_after <= now else (
            f"renewal due since {record.renew_at:%Y-%m-%d}" if record else "its expiry was not on record")
        result.events.append(("Normal", "CertificateRenewed",
                              f"API certificate renewed ({expiry}); valid until {generated.not_after:%Y-%m-%d}; "
                              "webapps load it without a restart"))
    return CertificateRecord(generated.not_before, generated.not_after).to_status()


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), {})


# Never deleted to make an apply fit: they hold data, or (masters, coreapps) deleting them
# stops the primary master or every shard owner at once.
NEVER_REPLACED_KINDS = ("StatefulSet", "PersistentVolumeClaim")
NEVER_REPLACED_ROLES = (Role.MASTER, Role.COREAPP)


async def _apply_if_changed(objects: Objects, obj: dict[str, Any], namespace: str, owner: dict[str, Any],
                            memory: ApplyMemory) -> bool:
    """Apply `obj` unless neither it nor the live object changed since our last apply (see
    domain/apply_memory.py); returns whether it was applied. The hash goes on the object too."""
    digest = desired_hash(obj, namespace, owner)
    key = object_key({**obj, "metadata": {**obj["metadata"], "namespace": namespace}})
    now = time.monotonic()
    reason = memory.reason(key, digest, now)
    if reason is None:
        APPLIES_SKIPPED.inc()
        return False
    stamped = {**obj, "metadata": {**obj["metadata"], "annotations": {
        **(obj["metadata"].get("annotations") or {}), APPLIED_HASH_ANNOTATION: digest}}}
    live = await _apply_or_replace(objects, stamped, namespace, owner)
    memory.applied(key, digest, live, now)
    APPLIES.labels(reason=reason).inc()
    if reason == "changed-by-others":
        log.info("applied %s %s/%s again: changed by another field manager", obj["kind"], namespace,
                 obj["metadata"]["name"])
    return True


async def _apply_or_replace(objects: Objects, obj: dict[str, Any], namespace: str,
                            owner: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply. When the API server rejects it, find out why before touching anything:
    a desired object that is invalid by itself (a spec the API server rejects, e.g. a typo in
    `resources`) is reported and the running object kept; only when our object is valid as a new
    one, so someone else's edit of the live object is what makes the apply invalid (their field
    manager still owns, say, a changed Service port), is the edited object deleted and ours
    created again, and never one that holds data or runs masters or coreapps."""
    try:
        return await objects.apply(obj, namespace, owner)
    except ApiException as exc:
        if exc.status != 422:
            raise
        if await objects.rejection_as_new(obj, namespace) is not None:
            raise  # our own desired object is invalid: replacing would only delete the running one
        role = (obj["metadata"].get("labels") or {}).get(Label.COMPONENT)
        if obj["kind"] in NEVER_REPLACED_KINDS or role in NEVER_REPLACED_ROLES:
            raise
        log.warning("replacing %s %s/%s: our apply is invalid against its edited state (%s)",
                    obj["kind"], namespace, obj["metadata"]["name"], _api_message(exc))
        await objects.delete(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], namespace,
                             propagation="Foreground")
        await objects.wait_deleted(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], namespace)
        return await objects.apply(obj, namespace, owner)


def _api_message(exc: ApiException) -> str:
    try:
        return json.loads(exc.body).get("message", exc.reason)
    except (TypeError, ValueError):
        return str(exc.reason)


async def _prune(objects: Objects, namespace: str, cluster: str, wanted: frozenset) -> tuple[int, bool]:
    """Delete the cluster's objects that are not `wanted` (pairs of kind and name); returns how
    many, and whether nothing undesired was kept back (a Job still running is kept)."""
    labels = {Label.CLUSTER: cluster, Label.MANAGED_BY: MANAGED_BY}
    deleted, complete = 0, True
    for api_version, kind in PRUNABLE:
        for item in await objects.list(api_version, kind, namespace, labels):
            item_name = item["metadata"]["name"]
            if (kind, item_name) in wanted:
                continue
            if kind == "Job" and job_phase(item) != "Succeeded":
                complete = complete and job_phase(item) == "Failed"
                continue  # never kill a running migration; keep a failed one for its logs
            log.info("pruning %s %s/%s: no longer desired", kind, namespace, item_name)
            await objects.delete(api_version, kind, item_name, namespace)
            deleted += 1
    return deleted, complete


async def _observe(objects: Objects, view: ClusterView, spec: WhatsAppClusterSpec, generation: int,
                   rollout: Rollout, annotations: dict[str, str]) -> Observation:
    names, ns = view.names, view.namespace
    roles = {
        Role.MASTER: spec.masters.replicas, Role.COREAPP: spec.coreapps.replicas, Role.WEBAPP: spec.webapps.replicas,
    }
    if spec.gateway.mode == "sandbox":
        roles[Role.SANDBOX] = 1
    counts = {}
    for role, desired in roles.items():
        counts[role] = _role_counts(await objects.get("apps/v1", "Deployment", names.role(role), ns), desired)
    database_ready = True
    if spec.database.mode == "embedded":
        sts = await objects.get("apps/v1", "StatefulSet", names.database, ns)
        database_ready = bool(sts and (sts.get("status") or {}).get("readyReplicas", 0) >= 1)
    lease = await objects.get("coordination.k8s.io/v1", "Lease", names.master_lease, ns)
    primary, shards, answer = None, [], None
    if lease:
        primary = (lease.get("spec") or {}).get("holderIdentity") or None
        lease_annotations = lease["metadata"].get("annotations") or {}
        shards = _lease_json(lease_annotations, SHARD_MAP_ANNOTATION, ns, names.master_lease) or []
        answer = _lease_json(lease_annotations, SWITCHOVER_STATUS_ANNOTATION, ns, names.master_lease)
    return Observation(generation=generation, rollout=rollout, roles=counts, database_ready=database_ready,
                       primary_master=primary, shards=shards, shard_count=spec.shards,
                       masters_wanted=spec.masters.replicas, coreapps_wanted=spec.coreapps.replicas,
                       fenced=parse_fenced(annotations.get(FENCED_ANNOTATION)),
                       switchover_request=annotations.get(SWITCHOVER_ANNOTATION) or None, switchover_answer=answer)


def _lease_json(annotations: dict[str, str], key: str, namespace: str, lease: str):
    raw = annotations.get(key)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        log.warning("ignoring an unreadable %s on Lease %s/%s", key, namespace, lease)
        return None


def _events(old: dict[str, Any], new: dict[str, Any], rollout: Rollout) -> list[tuple[str, str, str]]:
    events = []
    if new.get("phase") != old.get("phase"):
        kind = "Warning" if new.get("phase") in ("Failed", "Degraded") else "Normal"
        events.append((kind, f"Phase{new.get('phase')}", f"phase {old.get('phase') or 'none'} -> {new.get('phase')}"))
    if new.get("targetVersion") and new.get("targetVersion") != old.get("targetVersion") and not rollout.blocked:
        events.append(("Normal", "UpgradeStarted", rollout.message))
    if old.get("version") and new.get("version") and new["version"] != old["version"]:
        events.append(("Normal", "UpgradeFinished", f"every role runs {new['version']}"))
    if rollout.blocked and old.get("phase") != "Failed":
        events.append(("Warning", "DBUpgradeFailed", rollout.message))
    if new.get("primaryMaster") and new.get("primaryMaster") != old.get("primaryMaster"):
        events.append(("Normal", "PrimaryMaster", f"{new['primaryMaster']} holds the master Lease"))
    old_owners = {s.get("shard"): (s.get("coreapp"), s.get("epoch")) for s in old.get("shards") or []}
    for shard in new.get("shards") or []:
        before = old_owners.get(shard.get("shard"))
        if before and before != (shard.get("coreapp"), shard.get("epoch")) and shard.get("coreapp"):
            events.append(("Normal", "CoreappPromoted",
                           f"shard {shard['shard']}: {shard['coreapp']} promoted (epoch {shard.get('epoch')})"))
    return events + _maintenance_events(old, new)


# Maintenance conditions: an event when the answer changes (reason, then the event's type).
_MAINTENANCE_EVENTS = {("Switchover", "InProgress"): ("Normal", "SwitchoverStarted"),
                       ("Switchover", "Completed"): ("Normal", "SwitchoverCompleted"),
                       ("Switchover", "Waiting"): ("Warning", "SwitchoverWaiting"),
                       ("Switchover", "Refused"): ("Warning", "SwitchoverRefused"),
                       ("Fenced", "CoreappsFenced"): ("Normal", "CoreappsFenced"),
                       ("Fenced", "FencedOwnerServing"): ("Warning", "FencedOwnerServing"),
                       ("Fenced", "NoneFenced"): ("Normal", "NoneFenced")}


def _maintenance_events(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str, str]]:
    events = []
    for kind in ("Fenced", "Switchover"):
        before, after = _condition(old, kind), _condition(new, kind)
        if not after or (before.get("reason"), before.get("message")) == (after.get("reason"), after.get("message")):
            continue
        if not before and after.get("reason") == "NoneFenced":
            continue  # a new cluster: nothing was ever fenced
        event = _MAINTENANCE_EVENTS.get((kind, after.get("reason")))
        if event:
            events.append((*event, after["message"]))
    return events
