"""The WhatsAppCluster status: phase and conditions from what the operator observed."""

from __future__ import annotations

from dataclasses import dataclass, field

from wacluster.domain.upgrade import Rollout


@dataclass(frozen=True)
class RoleCounts:
    desired: int
    ready: int
    updated: int  # pods already on the current template


@dataclass(frozen=True)
class Observation:
    generation: int
    rollout: Rollout
    roles: dict[str, RoleCounts]           # master, coreapp, webapp (and sandbox)
    database_ready: bool
    primary_master: str | None
    shards: list[dict] = field(default_factory=list)
    shard_count: int = 1
    masters_wanted: int = 2
    coreapps_wanted: int = 2
    fenced: frozenset[str] = frozenset()      # the wacluster.io/fenced annotation
    switchover_request: str | None = None     # the wacluster.io/switchover annotation
    switchover_answer: dict | None = None     # the primary master's answer on its Lease


def _condition(type_: str, ok: bool, reason: str, message: str, generation: int) -> dict:
    return {"type": type_, "status": "True" if ok else "False", "reason": reason,
            "message": message, "observedGeneration": generation}


def ha_warnings(masters: int, coreapps: int, shards: int) -> list[str]:
    """Where the requested shape weakens High Availability (warnings, not errors)."""
    out = []
    if masters < 2:
        out.append("only one master: heartbeat monitoring is off and a master failure stops failover until it restarts")
    if coreapps <= shards:
        out.append(f"no standby coreapp ({coreapps} coreapps for {shards} shards): a failed coreapp leaves its shard unassigned")
    return out


def compute_status(obs: Observation) -> dict:
    gen, rollout = obs.generation, obs.rollout
    not_ready = [f"{role} {c.ready}/{c.desired}" for role, c in obs.roles.items() if c.ready < c.desired]
    if not obs.database_ready:
        not_ready.append("database")
    rolled = all(c.updated >= c.desired for c in obs.roles.values())
    version = rollout.settled_version(rolled and not not_ready)
    if version is None and not rollout.blocked:
        not_ready.append(f"the dbupgrade Job for {rollout.job_version}")
    all_ready = not not_ready
    upgrading = rollout.upgrading and version != rollout.job_version
    progressing = upgrading or not all_ready
    warnings = ha_warnings(obs.masters_wanted, obs.coreapps_wanted, obs.shard_count)
    unassigned = [s["shard"] for s in obs.shards if not s.get("coreapp")]

    if rollout.blocked:
        phase = "Failed"
    elif upgrading:
        phase = "Upgrading"
    elif not all_ready:
        phase = "Progressing"
    elif unassigned:
        phase = "Degraded"
    else:
        phase = "Ready"

    waiting = ", ".join(not_ready)
    degraded_reasons = []
    if rollout.blocked:
        degraded_reasons.append(rollout.message)
    if unassigned:
        degraded_reasons.append(f"shards without a connected coreapp: {unassigned}")
    degraded_reasons += [f"HA weakened: {w}" for w in warnings]
    conditions = [
        _condition("Ready", all_ready and not rollout.blocked, "AllRolesReady" if all_ready else "RolesNotReady",
                   "every role is ready" if all_ready else f"waiting for {waiting}", gen),
        _condition("Progressing", progressing and not rollout.blocked,
                   rollout.reason if upgrading else ("Reconciling" if progressing else "Reconciled"),
                   rollout.message if upgrading else (f"waiting for {waiting}" if progressing else "nothing to do"), gen),
        _condition("Degraded", bool(degraded_reasons),
                   "DBUpgradeFailed" if rollout.blocked else ("ShardsUnassigned" if unassigned else
                                                             ("HAWeakened" if warnings else "AsExpected")),
                   "; ".join(degraded_reasons) or "no known problem", gen),
        _condition("UpgradeInProgress", upgrading and not rollout.blocked, rollout.reason, rollout.message, gen),
        _fenced_condition(obs),
        _switchover_condition(obs),
    ]
    counts = {role: {"replicas": c.desired, "ready": c.ready} for role, c in obs.roles.items()
              if role in ("master", "coreapp", "webapp")}
    total_ready = sum(c["ready"] for c in counts.values())
    total = sum(c["replicas"] for c in counts.values())
    return {
        "observedGeneration": gen,
        "phase": phase,
        "conditions": conditions,
        "version": version,
        "targetVersion": rollout.job_version if upgrading or rollout.blocked else None,
        "masters": counts.get("master"),
        "coreapps": counts.get("coreapp"),
        "webapps": counts.get("webapp"),
        "primaryMaster": obs.primary_master,
        "shards": obs.shards,
        "readySummary": f"{total_ready}/{total}",
    }


def _fenced_condition(obs: Observation) -> dict:
    if not obs.fenced:
        return _condition("Fenced", False, "NoneFenced", "no coreapp is fenced", obs.generation)
    holding = [f"{s['coreapp']} still serves shard {s['shard']} (no standby to take it)"
               for s in obs.shards if s.get("coreapp") in obs.fenced]
    message = "; ".join([f"fenced for maintenance (never promoted): {', '.join(sorted(obs.fenced))}", *holding])
    return _condition("Fenced", True, "FencedOwnerServing" if holding else "CoreappsFenced", message, obs.generation)


def _switchover_condition(obs: Observation) -> dict:
    """True once the requested switchover completed, False when refused or none was asked for,
    Unknown while it runs or waits (or before the primary master answered)."""
    request, answer = obs.switchover_request, obs.switchover_answer or {}
    if not request:
        return _condition("Switchover", False, "NoneRequested", "no switchover requested", obs.generation)
    if answer.get("request") != request:
        cond = _condition("Switchover", False, "Requested", f"requested {request}; waiting for the primary master",
                          obs.generation)
        return {**cond, "status": "Unknown"}
    state, message = answer.get("state"), f"{answer.get('message')} (request {request})"
    if state == "Completed":
        return _condition("Switchover", True, "Completed", message, obs.generation)
    if state == "Refused":
        return _condition("Switchover", False, "Refused", message, obs.generation)
    reason = "Waiting" if state == "Waiting" else "InProgress"
    return {**_condition("Switchover", False, reason, message, obs.generation), "status": "Unknown"}


def merge_conditions(old: list[dict], new: list[dict], now: str) -> list[dict]:
    """Keep lastTransitionTime when a condition's status did not change (API conventions)."""
    previous = {c.get("type"): c for c in old or []}
    out = []
    for cond in new:
        before = previous.get(cond["type"])
        if before and before.get("status") == cond["status"] and before.get("lastTransitionTime"):
            cond = {**cond, "lastTransitionTime": before["lastTransitionTime"]}
        else:
            cond = {**cond, "lastTransitionTime": now}
        out.append(cond)
    return out
