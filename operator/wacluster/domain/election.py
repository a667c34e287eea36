"""Leader election over a lock record with optimistic concurrency (a Kubernetes Lease in
production, a fake in tests).

The rules follow client-go's leader election: a lease is judged expired by the *local* time at
which this candidate last saw the record change, never by the remote renewTime, so clock skew
between nodes cannot make two candidates both think they lead. Every write carries the version
it read; a lost race is a conflict, not a second leader.
"""

from __future__ import annotations

import abc
import asyncio
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


class LockStore(abc.ABC):
    """Where the lock record lives. Implementations must reject stale versions."""

    @abc.abstractmethod
    async def get(self) -> LockRecord | None: ...

    @abc.abstractmethod
    async def create(self, record: LockRecord) -> LockRecord: ...

    @abc.abstractmethod
    async def update(self, record: LockRecord) -> LockRecord:
        """Write `record` if the stored version still equals `record.version`."""


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
            await self.release()

    async def _attempt(self) -> bool:
        try:
            return await self.try_acquire_or_renew()
        except Exception as exc:  # the store is remote: any failure is a failed attempt
            log.warning("lease attempt failed: %s", exc)
            return False

    async def release(self) -> bool:
        """Give the lock up at once so a standby takes over within one retry period."""
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
