"""This master's standing: whether it holds the master Lease, and whether its term is the one
the database fences shard-map writes with."""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from psycopg_pool import AsyncConnectionPool

from wacluster.db import nodes as nodes_db
from wacluster.db import shard_map
from wacluster.domain.election import LeaderElector, Timings, term_to_claim
from wacluster.kube.lease import KubeLeaseStore, campaign
from wacluster.runtime import metrics

log = logging.getLogger("wacluster.master")


class Leadership:
    """The election's callbacks and the term sequence (`hold_term`). A master acts only while
    it holds the Lease (`primary`) *and* its term is the recorded one (`term_claimed`)."""

    def __init__(self, name: str, pool: AsyncConnectionPool, lease_store: KubeLeaseStore,
                 wake: asyncio.Event, on_established: Callable[[], Awaitable[None]]) -> None:
        self.name = name
        self.pool = pool
        self.lease_store = lease_store
        self.wake = wake
        # Called once a term is established: a fresh primary judges with fresh heartbeats.
        self.on_established = on_established
        self.elector: LeaderElector | None = None
        self.primary = False        # the elector holds the Lease
        self.term = 0
        self.term_claimed = False
        self.changes = 0            # counts the elector's starts and stops of leading

    async def campaign(self, timings: Timings, stop: asyncio.Event) -> None:
        """Campaign for the Lease until `stop` is set (then release it)."""
        self.elector = LeaderElector(self.lease_store, self.name, timings)
        await campaign(self.elector, self.lease_store, self._started_leading, self._stopped_leading, stop)

    async def _started_leading(self, term: int) -> None:
        self.term, self.primary, self.term_claimed = term, True, False
        self.changes += 1
        metrics.IS_PRIMARY.set(1)
        metrics.TERM.set(term)
        self.wake.set()

    def abandon(self, error: BaseException | None) -> None:
        """The election task died: this master no longer knows whether it leads, so it does not."""
        self.primary, self.term_claimed = False, False
        metrics.IS_PRIMARY.set(0)

    async def _stopped_leading(self) -> None:
        self.primary, self.term_claimed = False, False
        self.changes += 1
        metrics.IS_PRIMARY.set(0)
        log.info("%s is no longer the primary master", self.name)
        try:
            async with self.pool.connection() as conn:
                await nodes_db.set_state(conn, self.name, is_primary=False)
        except Exception as exc:
            log.warning("could not record stepping down: %s", exc)

    async def hold_term(self, conn) -> str | None:
        """Make this Lease holder's term the one the database fences shard-map writes with.
        Returns None when this master may act in this cycle, else the sentence saying why not.

        Why a master that lost its Lease cannot act on a term, including an old holder that
        still believes it holds a Lease object that was deleted and created again:
        1. `master_term` keeps one (term, holder), a claim only raises it, and every shard-map
           write requires it to be the writer's own: only the last claimant's writes land.
        2. A term is raised only by a conditional write to the Lease (`raise_term`): a master
           whose Lease was taken, or deleted and created again, gets a conflict and claims
           nothing, so it never out-claims the holder. The raised term sits in the Lease, so
           whoever takes that Lease next starts above it.
        3. Terms of two Lease objects can tie or invert (a new object starts at 1; an old holder
           may have raised its object's term and not claimed it yet). So a claim counts only if
           a read after it still shows this master holding the Lease with that term (`holds`).
           Whoever holds the Lease later acquired it after that read, reads `master_term` after
           it, and claims above this term (`term_to_claim`) before its first write; one that
           read before our claim either is refused and tries again above us, or fences us.
        4. Every cycle the primary checks that `master_term` still shows its own term, and its
           Lease too (a Lease it created again after a deletion starts at 1); if not, it stops
           acting and starts again from 2.
        """
        recorded = await shard_map.read_term(conn)
        if self.term_claimed:
            if recorded == (self.term, self.name) and self.elector.term == self.term:
                return None
            if recorded != (self.term, self.name):
                log.warning("%s: term %d is no longer the recorded one (now %s); claiming again",
                            self.name, self.term, "none" if recorded is None else "term %d of %s" % recorded)
            else:  # this master created the Lease again after it was deleted: a new object, a new term
                log.info("%s: the Lease was created again (its term is %d); claiming a new term",
                         self.name, self.elector.term)
            self.term_claimed = False
        changes = self.changes
        lease_term = self.elector.term
        term = await self.elector.raise_term(term_to_claim(lease_term, recorded, self.name))
        if term is None:
            return "holds the Lease no longer (it changed hands or cannot be read); not acting"
        if term != lease_term and recorded is not None:
            log.info("%s: raised the term in the Lease from %d to %d: term %d of %s was already recorded "
                     "(the Lease was created again, or another holder claimed first)",
                     self.name, lease_term, term, *recorded)
        if not await shard_map.claim_term(conn, term, self.name):
            return f"could not claim term {term}: a newer term was claimed meanwhile; not acting"
        if not await self.elector.holds(term) or changes != self.changes:
            return f"claimed term {term} but no longer holds the Lease; not acting"
        self.term, self.term_claimed = term, True
        metrics.TERM.set(term)
        await nodes_db.mark_primary(conn, self.name)
        log.info("%s is the primary master (term %d)", self.name, term, extra={"term": term})
        await self.on_established()
        return None
