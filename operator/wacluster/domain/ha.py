"""The primary master's decision: one read of the world in, actions and one sentence out.

Detection follows the seeds and adds what Kubernetes and the shard lease make safe:
- heartbeat rule (two or more masters): a primary coreapp that answered no master's heartbeat
  for `unhealthy_interval` is unhealthy;
- database rule: a primary coreapp whose database heartbeat is older than `db_unhealthy_after`
  is unhealthy;
- a coreapp that is stopping (planned handoff, terminating pod) or gone is unhealthy at once;
- a shard whose lease expired has no serving owner: its coreapp fenced itself.

Maintenance (domain/maintenance.py) adds two planned moves: a fenced coreapp is never promoted
and, owning a shard, is asked to hand it off; a switchover asks the owner of one shard to hand it
off and prefers the chosen coreapp as its successor. A handoff is the same drain-and-release as a
coreapp's own planned stop, so a healthy owner is never revoked for maintenance.

Safety does not depend on detection: an unhealthy owner is first *revoked* (it can no longer
renew its lease), and a successor is promoted only after the owner's lease has expired in the
database, by which time the owner has stopped serving (see `domain/fencing.py`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from wacluster.domain.maintenance import MAINTENANCE_RELEASE, SWITCHOVER_WINDOW, Invalid, Switchover, SwitchoverState


@dataclass(frozen=True)
class CoreappState:
    name: str
    db_heartbeat_age: float
    stopping: bool
    since_answer: float | None   # seconds since any master's heartbeat was answered (None: never)
    pod_gone: bool = False       # Kubernetes deletes (or deleted) its pod


@dataclass(frozen=True)
class ShardState:
    shard: int
    coreapp: str | None
    epoch: int
    lease_expired: bool
    revoked: bool
    since: dt.datetime | None = None  # when the current owner was promoted (the database's clock)
    reason: str = ""                  # why the row last changed


@dataclass(frozen=True)
class World:
    shards: list[ShardState]
    coreapps: dict[str, CoreappState]
    shard_count: int
    masters_alive: int
    registered: bool
    heartbeat_interval: float
    unhealthy_interval: float
    db_unhealthy_after: float
    fenced: frozenset[str] = frozenset()
    switchover: Switchover | Invalid | None = None
    now: dt.datetime | None = None  # the database's clock when the shard map was read


@dataclass(frozen=True)
class Action:
    kind: Literal["ensure_shards", "resize", "revoke", "promote", "handoff"]
    shard: int | None = None
    epoch: int | None = None
    coreapp: str | None = None
    reason: str = ""


@dataclass
class Decision:
    actions: list[Action] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    switchover: tuple[SwitchoverState, str] | None = None  # the answer to the request, if any

    @property
    def sentence(self) -> str:
        return "; ".join(self.notes)


def lease_ttl(heartbeat_interval: float, unhealthy_interval: float) -> float:
    """A coreapp's shard lease: shorter than the unhealthy interval minus one heartbeat's slack."""
    return max(unhealthy_interval - heartbeat_interval, heartbeat_interval, 0.3)


def unhealthy_reason(world: World, name: str) -> str | None:
    coreapp = world.coreapps.get(name)
    if coreapp is None:
        return "it is gone (no node record)"
    if coreapp.pod_gone:
        return "its pod is terminating or deleted"
    if coreapp.stopping:
        return "it is stopping (planned handoff)"
    if coreapp.db_heartbeat_age > world.db_unhealthy_after:
        return f"its database heartbeat is {coreapp.db_heartbeat_age:.0f}s old (limit {world.db_unhealthy_after:g}s)"
    if world.masters_alive >= 2:
        silent = coreapp.since_answer
        if silent is None or silent > world.unhealthy_interval:
            age = "ever" if silent is None else f"for {silent:.1f}s"
            return f"it answered no master heartbeat {age} (limit {world.unhealthy_interval:g}s)"
    return None


def healthy_standbys(world: World, busy: set[str], previous_owners: set[str] = frozenset()) -> list[str]:
    """Candidates, best first: a coreapp that just lost a shard comes last (it may be flaky)."""
    # Heartbeats go out every interval: a live coreapp answered within about one of them.
    fresh = 1.5 * world.heartbeat_interval + 0.25
    out = []
    for name, coreapp in sorted(world.coreapps.items(), key=lambda kv: (kv[0] in previous_owners, kv[0])):
        if name in busy or name in world.fenced or unhealthy_reason(world, name):
            continue
        if coreapp.since_answer is None or coreapp.since_answer > fresh:
            continue  # a standby must be answering right now, whatever the mode
        out.append(name)
    return out


def decide(world: World) -> Decision:
    decision = Decision()
    if not world.registered:
        decision.notes.append("no action: the account is not registered yet")
        return decision
    if not world.shards:
        decision.actions.append(Action("ensure_shards", reason=f"create {world.shard_count} shard(s)"))
        decision.notes.append(f"creating the shard map with {world.shard_count} shard(s)")
        return decision
    if len(world.shards) != world.shard_count:
        return _reshard(world, decision)

    busy = {s.coreapp for s in world.shards if s.coreapp and not (s.lease_expired or s.revoked)}
    previous = {s.coreapp for s in world.shards if s.coreapp} - busy
    standbys = healthy_standbys(world, busy, previous)
    wanted = _judge_switchover(world, busy, standbys, decision)
    for shard in world.shards:
        if wanted is not None and wanted.shard == shard.shard and wanted.to in standbys:
            standbys.remove(wanted.to)
            standbys.insert(0, wanted.to)  # the chosen successor goes first for this shard
        _decide_shard(world, shard, standbys, decision, wanted)
    if not decision.actions and not decision.notes:
        decision.notes.append(f"no action: all {len(world.shards)} shard(s) owned by healthy coreapps")
    return decision


def _decide_shard(world: World, shard: ShardState, standbys: list[str], decision: Decision,
                  wanted: Switchover | None = None) -> None:
    k = shard.shard
    if shard.coreapp is not None:
        reason = unhealthy_reason(world, shard.coreapp)
        if shard.lease_expired and reason is None:
            reason = ("it handed the shard off for maintenance" if shard.reason.startswith(MAINTENANCE_RELEASE)
                      else "its shard lease expired (it fenced itself)")
        if reason is None:
            planned = _planned_reason(world, shard, wanted, standbys)
            if planned:
                decision.actions.append(Action("handoff", k, shard.epoch, shard.coreapp, planned))
                decision.notes.append(f"asking {shard.coreapp} to hand shard {k} off because {planned}")
            elif shard.coreapp in world.fenced and not shard.revoked:
                decision.notes.append(f"{shard.coreapp} is fenced but keeps shard {k}: no standby to take it")
            return
        if not shard.revoked and not shard.lease_expired:
            decision.actions.append(Action("revoke", k, shard.epoch, shard.coreapp, reason))
            decision.notes.append(f"revoking shard {k} from {shard.coreapp} because {reason}")
            return
        if not shard.lease_expired:
            decision.notes.append(f"waiting for {shard.coreapp}'s lease on shard {k} to expire ({reason})")
            return
        why = f"{shard.coreapp} lost shard {k} because {reason}"
    else:
        why = f"shard {k} has no coreapp"
    if not standbys:
        decision.notes.append(f"{why}; no healthy standby to promote, shard {k} stays unassigned")
        return
    chosen = standbys.pop(0)
    decision.actions.append(Action("promote", k, shard.epoch, chosen, why))
    decision.notes.append(f"promoting {chosen} for shard {k}: {why}")


def _planned_reason(world: World, shard: ShardState, wanted: Switchover | None, standbys: list[str]) -> str | None:
    """Why a healthy owner should hand its shard off now (maintenance), or None. Only when a
    successor is standing by: a handoff with nobody to take over would leave the shard unowned."""
    if shard.revoked or not standbys:
        return None
    if shard.coreapp in world.fenced:
        return "it is fenced for maintenance"
    if wanted is not None and wanted.shard == shard.shard and (wanted.to is None or wanted.to in standbys):
        return f"a switchover to {wanted.to} was requested" if wanted.to else "a switchover was requested"
    return None


def _judge_switchover(world: World, busy: set[str], standbys: list[str], decision: Decision) -> Switchover | None:
    """Answer the switchover request (decision.switchover) and return it when it still has to act."""
    request = world.switchover
    if request is None:
        return None
    if isinstance(request, Invalid):
        decision.switchover = ("Refused", f"the switchover request is invalid: {request.problem}")
        return None
    shard = next((s for s in world.shards if s.shard == request.shard), None)
    if shard is None:
        decision.switchover = ("Refused", f"there is no shard {request.shard} (shards 0-{len(world.shards) - 1})")
        return None
    owner = shard.coreapp if not (shard.lease_expired or shard.revoked) else None
    moved = shard.since is not None and shard.since >= request.requested_at
    if owner is not None and (owner == request.to or (request.to is None and moved)):
        decision.switchover = ("Completed", f"shard {shard.shard} is served by {owner} (epoch {shard.epoch})")
        return None
    problem = None
    if request.to is not None:
        unfit = _unfit_successor(world, request.to, busy)
        problem = unfit and f"{request.to} cannot take shard {shard.shard}: {unfit}"
    elif not [s for s in standbys if s != owner]:
        problem = f"no healthy, unfenced standby coreapp to take shard {shard.shard}"
    if world.now is not None and (world.now - request.requested_at).total_seconds() > SWITCHOVER_WINDOW:
        decision.switchover = ("Refused", f"not done within {SWITCHOVER_WINDOW:g}s of its request"
                                          + (f" ({problem})" if problem else ""))
        return None
    if problem:
        decision.switchover = ("Waiting", problem)
        return None
    target = request.to or "a standby"
    decision.switchover = ("InProgress", f"moving shard {shard.shard} from {owner or 'nobody'} to {target}")
    return request


def _unfit_successor(world: World, name: str, busy: set[str]) -> str | None:
    if name not in world.coreapps:
        return "no such coreapp is running"
    if name in world.fenced:
        return "it is fenced"
    if name in busy:
        return "it serves another shard"
    return unhealthy_reason(world, name)


def _reshard(world: World, decision: Decision) -> Decision:
    owned = [s for s in world.shards if s.coreapp and not s.lease_expired]
    if not owned:
        decision.actions.append(Action("resize", reason=f"{len(world.shards)} -> {world.shard_count} shards"))
        decision.notes.append(f"re-partitioning from {len(world.shards)} to {world.shard_count} shard(s)")
        return decision
    for shard in owned:
        if not shard.revoked:
            decision.actions.append(Action("revoke", shard.shard, shard.epoch, shard.coreapp,
                                           f"re-partitioning to {world.shard_count} shard(s)"))
    decision.notes.append(f"stopping {len(owned)} shard owner(s) to re-partition to {world.shard_count} shard(s)")
    return decision
