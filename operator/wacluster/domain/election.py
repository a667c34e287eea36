"""Leader election over a lock record with optimistic concurrency (a Kubernetes Lease in
production, a fake in tests).

The rules follow client-go's leader election: a lease is judged expired by the *local* time at
which this candidate last saw the record change, never by the remote renewTime, so clock skew
between nodes cannot make two candidates both think they lead. Every write carries the version
it read; a lost race is a conflict, not a second leader.

The lock's transition count is the leader's *term*. Where the term must outlive the lock record
(the master term fences the shard map in the database, and a Lease can be deleted and created
again at 1), the leader raises it with `raise_term` and checks it still holds it with `holds`;
`term_to_claim` says by how much (runtime/master/leadership.py runs that sequence).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, replace
from typing import Awaitable, Callable

log = logging.getLogger("wacluster.election")


class LockConflict(Exception):
    """The record changed since it was read (HTTP 409) or already exists on create."""


@dataclass(frozen=True)
class LockRecord:
    holder: str | None
    duration: float
    transitions: int
    acquire_time: float | None = None  # wall clock, informational only
    renew_time: float | None = None
    version: str | None = None  # opaque store version (resourceVersion)


def term_to_claim(lease_term: int, recorded: tuple[int, str] | None, identity: str) -> int:
    """The term a new leader claims: its lock's term, raised above the newest term recorded
    elsewhere (the database's `master_term`) unless that record is already this leader's own.

    A lock record created again starts its transitions at 1 while the recorded term stays; the
    claim must still move forward, or the new leader could never act."""
    if recorded is None or recorded == (lease_term, identity):
        return lease_term
    return max(lease_term, recorded[0] + 1)


class LockStore(abc.ABC):
    """Where the lock record lives. Implementations must reject stale versions."""

    @abc.abstractmethod
    async def get(self) -> LockRecord | None: ...

    @abc.abstractmethod
    async def create(self, record: LockRecord) -> LockRecord: ...

    @abc.abstractmethod
    async def update(self, record: LockRecord) -> LockRecord:
        """Write `record` if the stored record is still the one `record.version` was read from;
        raise LockConflict when it changed, was deleted or was created again since."""


@dataclass(frozen=True)
class Timings:
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError("lease timings must satisfy lease_duration > renew_deadline > retry_period > 0")


class LeaderElector:
    """Acquires and renews one lock; `term` is the lock's transition count while leading."""

    def __init__(self, store: LockStore, identity: str, timings: Timings,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.store = store
        self.identity = identity
        self.timings = timings
        self._monotonic = monotonic
        self._wall = wall
        self._sleep = sleep
        self._observed: LockRecord | None = None
        self._observed_at = 0.0
        self._last_renewed = 0.0
        self.leading = False
        self.term = 0
        self.holder: str | None = None
        # One write at a time: the loop's renewal and `raise_term` both write under the version
        # this candidate last saw, and must not make each other's write stale.
        self._writing = asyncio.Lock()

    # --- one attempt -------------------------------------------------------------------------

    def _observe(self, record: LockRecord | None) -> None:
        changed = record is None or self._observed is None or (
            record.holder, record.renew_time, record.version) != (
            self._observed.holder, self._observed.renew_time, self._observed.version)
        if changed:
            self._observed_at = self._monotonic()
        self._observed = record
        self.holder = record.holder if record else None

    def _held_by_other(self, record: LockRecord) -> bool:
        if not record.holder or record.holder == self.identity:
            return False
        return self._observed_at + record.duration > self._monotonic()

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; returns True when this candidate holds the lock afterwards."""
        async with self._writing:
            return await self._acquire_or_renew()

    async def _acquire_or_renew(self) -> bool:
        now = self._wall()
        record = await self.store.get()
        self._observe(record)
        if record is None:
            fresh = LockRecord(self.identity, self.timings.lease_duration, 1, now, now)
            try:
                self._observe(await self.store.create(fresh))
            except LockConflict:
                return False
            return self._became(self._observed)
        if self._held_by_other(record):
            return False
        taking_over = record.holder != self.identity
        wanted = replace(
            record,
            holder=self.identity,
            duration=self.timings.lease_duration,
            transitions=record.transitions + 1 if taking_over else record.transitions,
            acquire_time=now if taking_over else record.acquire_time,
            renew_time=now,
        )
        try:
            self._observe(await self.store.update(wanted))
        except LockConflict:
            return False
        return self._became(self._observed)

    def _became(self, record: LockRecord) -> bool:
        self._last_renewed = self._monotonic()
        self.term = record.transitions
        return True

    # --- the term beyond the lock ------------------------------------------------------------

    async def raise_term(self, at_least: int) -> int | None:
        """Write a term of at least `at_least` into the lock, conditional on the version this
        leader last saw; returns the term now in the lock, or None when this candidate does not
        hold the lock (or could not tell).

        The write is a renewal like any other: it succeeds only if nobody changed, deleted or
        re-created the record since this leader wrote or read it, so only the current holder can
        raise the term; a holder deposed in the meantime gets a conflict. Whoever takes the lock
        next writes transitions + 1, above this term."""
        async with self._writing:
            record = self._observed
            if not self.leading or record is None or record.holder != self.identity:
                return None
            wanted = replace(record, transitions=max(record.transitions, at_least), renew_time=self._wall())
            try:
                self._observe(await self.store.update(wanted))
            except LockConflict:
                # Someone else wrote: see who, so the next call answers without a write.
                with contextlib.suppress(Exception):
                    await self._look()
                return None
            except Exception as exc:  # the store is remote: no answer is no
                log.warning("could not raise the term in the lease: %s", exc)
                return None
            self._became(self._observed)
            return self.term

    async def holds(self, term: int) -> bool:
        """Read the lock now: True when it names this candidate as holder with `term`."""
        async with self._writing:
            try:
                record = await self._look()
            except Exception as exc:
                log.warning("could not read the lease: %s", exc)
                return False
            return record is not None and record.holder == self.identity and record.transitions == term

    async def _look(self) -> LockRecord | None:
        record = await self.store.get()
        self._observe(record)
        return record

    # --- the loop ------------------------------------------------------------------------------

    async def run(self, on_started_leading: Callable[[int], Awaitable[None]],
                  on_stopped_leading: Callable[[], Awaitable[None]],
                  stop: asyncio.Event, wake: asyncio.Event | None = None) -> None:
        """Campaign until `stop` is set; lead while renewals succeed within the renew deadline.

        `wake`, when set (by whoever watches the lock for a release), cuts the retry-period wait
        short, so a standby takes a released lock at once instead of at its next poll.
        """
        while not stop.is_set():
            acquired = await self._attempt()
            if acquired and not self.leading:
                self.leading = True
                log.info("%s acquired the lease (term %d)", self.identity, self.term)
                await on_started_leading(self.term)
            elif self.leading and not acquired:
                if self._monotonic() - self._last_renewed > self.timings.renew_deadline:
                    self.leading = False
                    log.warning("%s could not renew the lease within %.1fs; stepping down",
                                self.identity, self.timings.renew_deadline)
                    await on_stopped_leading()
            await _wait(stop, wake, self.timings.retry_period, self._sleep)
        if self.leading:
            self.leading = False
            await on_stopped_leading()
            try:
                await asyncio.wait_for(self.release(), timeout=self.timings.renew_deadline)
            except asyncio.TimeoutError:
                log.warning("the lease release got no answer; it expires instead")

    async def _attempt(self) -> bool:
        # Bounded: a request to an unreachable store can hang with no error at all (a dead
        # switch), and a leader waiting on it would neither renew nor step down, while its lease
        # runs out and a standby leads beside it.
        timeout = self._attempt_timeout()
        try:
            return await asyncio.wait_for(self.try_acquire_or_renew(), timeout=timeout)
        except asyncio.TimeoutError:
            log.warning("lease attempt got no answer within %.1fs", timeout)
            return False
        except Exception as exc:  # the store is remote: any failure is a failed attempt
            log.warning("lease attempt failed: %s", exc)
            return False

    def _attempt_timeout(self) -> float:
        """A leader's attempt may last until its renew deadline (so it steps down in time); a
        candidate's one renew deadline. Never less than a retry period."""
        left = self.timings.renew_deadline
        if self.leading:
            left -= self._monotonic() - self._last_renewed
        return max(left, self.timings.retry_period)

    async def release(self) -> bool:
        """Give the lock up at once so a standby takes over within one retry period."""
        async with self._writing:
            record = self._observed
            if record is None or record.holder != self.identity:
                return False
            try:
                self._observe(await self.store.update(replace(record, holder=None, renew_time=self._wall())))
                log.info("%s released the lease", self.identity)
                return True
            except Exception as exc:
                log.warning("could not release the lease: %s", exc)
                return False


async def _wait(stop: asyncio.Event, wake: asyncio.Event | None, seconds: float, sleep) -> None:
    if sleep is not asyncio.sleep:  # a test's clock
        await sleep(seconds)
        return
    waits = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waits.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waits:
            waiter.cancel()
    if wake is not None:
        wake.clear()
