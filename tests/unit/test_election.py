"""The election state machine, with a fake clock and an in-memory lock store."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from wacluster.domain.election import LeaderElector, LockConflict, LockRecord, LockStore, Timings, term_to_claim

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class MemoryStore(LockStore):
    """Behaves like the API server: every write bumps the version; stale writes conflict."""

    def __init__(self) -> None:
        self.record: LockRecord | None = None
        self.version = 0
        self.reachable = True

    def _check(self):
        if not self.reachable:
            raise ConnectionError("store unreachable")

    async def get(self):
        self._check()
        return self.record

    async def create(self, record):
        self._check()
        if self.record is not None:
            raise LockConflict("exists")
        return self._write(record)

    async def update(self, record):
        self._check()
        if self.record is None or record.version != self.record.version:
            raise LockConflict("stale")
        return self._write(record)

    def _write(self, record):
        self.version += 1
        self.record = replace(record, version=str(self.version))
        return self.record


TIMINGS = Timings(lease_duration=15, renew_deadline=10, retry_period=2)


def _elector(store, name, clock):
    return LeaderElector(store, name, TIMINGS, monotonic=clock, wall=clock)


async def test_first_candidate_acquires_an_absent_lock_with_term_one():
    clock, store = Clock(), MemoryStore()
    a = _elector(store, "a", clock)
    assert await a.try_acquire_or_renew()
    assert a.term == 1 and store.record.holder == "a"


async def test_second_candidate_waits_while_the_lease_is_fresh():
    clock, store = Clock(), MemoryStore()
    a, b = _elector(store, "a", clock), _elector(store, "b", clock)
    await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    clock.now += 14
    assert not await b.try_acquire_or_renew()
    assert store.record.holder == "a"


async def test_expiry_is_judged_from_when_the_candidate_last_saw_a_change():
    clock, store = Clock(), MemoryStore()
    a, b = _elector(store, "a", clock), _elector(store, "b", clock)
    await a.try_acquire_or_renew()
    await b.try_acquire_or_renew()  # b first sees a's record now
    clock.now += 10
    await a.try_acquire_or_renew()  # a renews: b must restart its count on seeing it
    clock.now += 10
    assert not await b.try_acquire_or_renew()
    clock.now += 16
    assert await b.try_acquire_or_renew()
    assert b.term == 2 and store.record.holder == "b"


async def test_a_stale_write_loses_to_the_concurrent_winner():
    clock, store = Clock(), MemoryStore()
    a, b = _elector(store, "a", clock), _elector(store, "b", clock)
    await a.try_acquire_or_renew()
    await a.release()
    seen = await store.get()
    assert await b.try_acquire_or_renew()
    with pytest.raises(LockConflict):
        await store.update(replace(seen, holder="a"))
    assert store.record.holder == "b"


async def test_released_lock_is_taken_at_once_by_a_standby():
    clock, store = Clock(), MemoryStore()
    a, b = _elector(store, "a", clock), _elector(store, "b", clock)
    await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    assert await a.release()
    assert await b.try_acquire_or_renew()
    assert b.term == 2


async def test_leader_steps_down_when_it_cannot_renew_within_the_deadline():
    clock, store = Clock(), MemoryStore()
    events: list[str] = []

    async def fake_sleep(seconds):
        clock.now += seconds
        if clock.now > 1006:
            store.reachable = False
        if clock.now > 1030:
            stop.set()
        await asyncio.sleep(0)

    stop = asyncio.Event()
    a = LeaderElector(store, "a", TIMINGS, monotonic=clock, wall=clock, sleep=fake_sleep)

    async def started(term):
        events.append(f"lead {term} at {clock.now:.0f}")

    async def stopped():
        events.append(f"stop at {clock.now:.0f}")

    await a.run(started, stopped, stop)
    assert events[0] == "lead 1 at 1000"
    # last renewal at 1006; steps down at the first failed attempt more than 10 s later
    assert events[1] == "stop at 1018"
    assert len(events) == 2


def test_timings_must_be_ordered():
    with pytest.raises(ValueError):
        Timings(lease_duration=10, renew_deadline=10, retry_period=2)


# --- the term beyond the lock (the master term recorded in the database) ----------------------


def test_a_new_leader_claims_its_lock_term_when_nothing_newer_is_recorded():
    assert term_to_claim(3, None, "a") == 3
    assert term_to_claim(3, (2, "b"), "a") == 3
    assert term_to_claim(3, (3, "a"), "a") == 3  # its own claim, again


def test_a_lock_created_again_claims_above_the_recorded_term():
    # The Lease was deleted: its transitions start at 1 again, the database still says 7.
    assert term_to_claim(1, (7, "b"), "a") == 8
    assert term_to_claim(1, (7, "a"), "a") == 8  # even over its own older claim


def test_a_tie_with_another_holder_claims_above_it():
    assert term_to_claim(5, (5, "b"), "a") == 6


async def test_the_holder_raises_the_term_in_the_lock_and_the_next_holder_starts_above_it():
    clock, store = Clock(), MemoryStore()
    a, b = _elector(store, "a", clock), _elector(store, "b", clock)
    await a.try_acquire_or_renew()
    a.leading = True
    assert await a.raise_term(8) == 8
    assert store.record.transitions == 8 and store.record.holder == "a"
    assert await a.holds(8)
    assert not await b.try_acquire_or_renew()  # b sees a's record now
    clock.now += 16  # a stops renewing; b takes over once the lease duration passed unchanged
    assert await b.try_acquire_or_renew()
    assert b.term == 9


async def test_a_deposed_holder_cannot_raise_the_term():
    clock, store = Clock(), MemoryStore()
    a, b = _elector(store, "a", clock), _elector(store, "b", clock)
    await a.try_acquire_or_renew()
    a.leading = True
    await a.release()
    await b.try_acquire_or_renew()  # a still believes it leads
    assert await a.raise_term(8) is None
    assert store.record.holder == "b" and store.record.transitions == 2
    assert not await a.holds(1)


async def test_an_old_holder_of_a_deleted_lock_cannot_raise_the_term_of_the_new_one():
    clock, store = Clock(), MemoryStore()
    a, b = _elector(store, "a", clock), _elector(store, "b", clock)
    await a.try_acquire_or_renew()
    a.leading = True
    store.record = None  # kubectl delete lease
    assert await b.try_acquire_or_renew()  # created again, transitions 1
    assert await a.raise_term(2) is None  # a's version belongs to the deleted record
    assert store.record.holder == "b" and store.record.transitions == 1


class HangingStore(MemoryStore):
    """A store that stops answering at all (no error), as behind a dead switch."""

    def __init__(self) -> None:
        super().__init__()
        self.hang = False

    async def update(self, record):
        if self.hang:
            await asyncio.Event().wait()
        return await super().update(record)

    async def get(self):
        if self.hang:
            await asyncio.Event().wait()
        return await super().get()


async def test_a_leader_whose_renewal_hangs_steps_down_by_its_renew_deadline():
    store = HangingStore()
    timings = Timings(lease_duration=0.6, renew_deadline=0.4, retry_period=0.05)
    stop, stepped_down = asyncio.Event(), asyncio.Event()
    a = LeaderElector(store, "a", timings)

    async def started(term):
        store.hang = True  # every request from now on hangs

    async def stopped():
        stepped_down.set()
        stop.set()

    await asyncio.wait_for(a.run(started, stopped, stop), timeout=30)
    assert stepped_down.is_set() and not a.leading
