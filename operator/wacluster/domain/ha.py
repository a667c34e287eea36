"""The primary master's decision: one read of the world in, actions and one sentence out.

Detection follows the seeds and adds what Kubernetes and the shard lease make safe:
- heartbeat rule (two or more masters): a primary coreapp that answered no master's heartbeat
  for `unhealthy_interval` is unhealthy;
- database rule: a primary coreapp whose database heartbeat is older than `db_unhealthy_after`
  is unhealthy;
- a coreapp that is stopping (planned handoff, terminating pod) or gone is unhealthy at once;
- a shard whose lease expired has no serving owner: its coreapp fenced itself.

Safety does not depend on detection: an unhealthy owner is first *revoked* (it can no longer
renew its lease), and a successor is promoted only after the owner's lease has expired in the
database, by which time the owner has stopped serving (see `domain/fencing.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


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


@dataclass(frozen=True)
class Action:
    kind: Literal["ensure_shards", "resize", "revoke", "promote"]
    shard: int | None = None
    epoch: int | None = None
    coreapp: str | None = None
    reason: str = ""


@dataclass
class Decision:
    actions: list[Action] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

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
        if name in busy or unhealthy_reason(world, name):
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
    for shard in world.shards:
        _decide_shard(world, shard, standbys, decision)
    if not decision.actions and not decision.notes:
        decision.notes.append(f"no action: all {len(world.shards)} shard(s) owned by healthy coreapps")
    return decision


def _decide_shard(world: World, shard: ShardState, standbys: list[str], decision: Decision) -> None:
    k = shard.shard
    if shard.coreapp is not None:
        reason = unhealthy_reason(world, shard.coreapp)
        if shard.lease_expired and reason is None:
            reason = "its shard lease expired (it fenced itself)"
        if reason is None:
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
