"""Carrying out what `ha.decide` chose, each write fenced by the master term (db/shard_map.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp

from wacluster.db import shard_map
from wacluster.domain.ha import Action, World, lease_ttl
from wacluster.runtime import metrics
from wacluster.runtime.master.heartbeats import Heartbeats

log = logging.getLogger("wacluster.master")

PROMOTION_CHECK_TIMEOUT = 0.5  # the direct check of a standby right before its promotion
HANDOFF_ASK_TIMEOUT = 0.5      # asking an owner for a planned handoff (it answers before it drains)


class Actions:
    def __init__(self, name: str, heartbeats: Heartbeats, wake: asyncio.Event) -> None:
        self.name = name
        self.heartbeats = heartbeats
        self.wake = wake

    async def execute(self, conn, action: Action, world: World, term: int, settings: dict[str, Any],
                      addresses: dict[str, str]) -> None:
        if action.kind == "ensure_shards":
            await shard_map.ensure_shards(conn, world.shard_count, term, self.name)
        elif action.kind == "resize":
            await shard_map.resize(conn, world.shard_count, term, self.name)
        elif action.kind == "revoke":
            await shard_map.revoke(conn, action.shard, action.epoch, term, self.name, action.reason)
        elif action.kind == "promote":
            await self._promote(conn, action, world, term, settings, addresses)
        elif action.kind == "handoff":
            await self._ask_handoff(conn, action, term, addresses)

    async def _ask_handoff(self, conn, action: Action, term: int, addresses: dict[str, str]) -> None:
        """Ask the owner to drain and release (it answers at once and hands off in the background;
        asked again while it does, it answers the same). When it cannot be asked, revoke instead:
        slower (its lease must run out) but it needs nothing from the owner."""
        address = addresses.get(action.coreapp)
        problem = "no control address" if address is None else None
        if address is not None:
            try:
                async with self.heartbeats.session.post(
                        f"http://{address}/handoff", headers=self.heartbeats.headers,
                        json={"shard": action.shard, "epoch": action.epoch, "reason": action.reason},
                        timeout=aiohttp.ClientTimeout(total=HANDOFF_ASK_TIMEOUT)) as resp:
                    if resp.status == 202:
                        return
                    problem = f"it answered {resp.status}: {(await resp.text())[:200]}"
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                problem = f"it did not answer ({exc or type(exc).__name__})"
        log.warning("could not ask %s to hand shard %d off (%s); revoking it instead", action.coreapp,
                    action.shard, problem, extra={"shard": action.shard, "epoch": action.epoch, "term": term})
        await shard_map.revoke(conn, action.shard, action.epoch, term, self.name, action.reason)

    async def _promote(self, conn, action: Action, world: World, term: int, settings: dict[str, Any],
                       addresses: dict[str, str]) -> None:
        started = time.monotonic()
        # Check the candidate answers right now: the shared heartbeat table may be a beat old.
        address = addresses.get(action.coreapp)
        timeout = aiohttp.ClientTimeout(total=PROMOTION_CHECK_TIMEOUT)
        if address is None or (await self.heartbeats.ping(action.coreapp, address, timeout))[1] is None:
            self.heartbeats.unreachable.add(action.coreapp)
            log.warning("%s did not answer before its promotion for shard %d; choosing again",
                        action.coreapp, action.shard, extra={"shard": action.shard, "term": term})
            self.wake.set()
            return
        ttl = lease_ttl(float(settings["heartbeat_interval"]), float(settings["unhealthy_interval"]))
        epoch = await shard_map.promote(conn, action.shard, action.epoch, action.coreapp, ttl,
                                        term, self.name, action.reason)
        if epoch is None:
            log.warning("promotion of %s for shard %d was refused (fenced or raced)", action.coreapp, action.shard,
                        extra={"shard": action.shard, "epoch": action.epoch, "term": term})
            return
        metrics.PROMOTION_SECONDS.observe(time.monotonic() - started)
        previous = next((sh.coreapp for sh in world.shards if sh.shard == action.shard), None)
        state = world.coreapps.get(previous) if previous else None
        if state is not None and state.since_answer is not None:
            metrics.DETECTION_SECONDS.observe(state.since_answer)
        metrics.FAILOVERS.labels(reason=reason_label(action.reason)).inc()
        metrics.SHARD_EPOCH.labels(shard=str(action.shard)).set(epoch)


def reason_label(reason: str) -> str:
    """The `reason` label of the failover counter, from the sentence `decide` gave."""
    for key, label in (("planned handoff", "planned"), ("stopping", "planned"), ("maintenance", "maintenance"),
                       ("heartbeat", "heartbeat"), ("database heartbeat", "db_heartbeat"), ("lease expired", "lease_expired"),
                       ("gone", "gone"), ("no coreapp", "unassigned")):
        if key in reason:
            return label
    return "other"
