"""The election on a real Lease (the masters' and the operator's): a standby that watches the
Lease takes a released one at once instead of at its next poll."""

from __future__ import annotations

import asyncio

import pytest

from wacluster.domain.election import LeaderElector, Timings
from wacluster.kube.lease import KubeLeaseStore, campaign
from wacluster_testenv.eventually import eventually_async

pytestmark = pytest.mark.integration


class NotingLeaseStore(KubeLeaseStore):
    """The real Lease store, noting its reads and the releases its watch reports."""

    def __init__(self, api, namespace: str, name: str, events: list[str], who: str) -> None:
        super().__init__(api, namespace, name)
        self.events, self.who, self.reads = events, who, 0

    async def get(self):
        record = await super().get()
        self.reads += 1
        return record

    async def watch_releases(self, on_released) -> None:
        def released() -> None:
            self.events.append(f"{self.who} saw the Lease released")
            on_released()

        await super().watch_releases(released)


async def test_a_watching_standby_takes_a_released_lease_without_waiting_for_its_next_poll(kube_api, namespace):
    # An hour between polls: within the test's bounds the standby can only be woken by the watch.
    timings = Timings(lease_duration=7200, renew_deadline=5400, retry_period=3600)
    events: list[str] = []

    def candidate(name: str, store: KubeLeaseStore, stop: asyncio.Event) -> asyncio.Task:
        async def started(term):
            events.append(f"{name} leads term {term}")

        async def stopped():
            events.append(f"{name} stopped")

        return asyncio.create_task(campaign(LeaderElector(store, name, timings), store, started, stopped, stop))

    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    a = candidate("a", KubeLeaseStore(kube_api, namespace, "watched"), stop_a)
    await eventually_async(lambda: events == ["a leads term 1"], 30, what="a leading")
    b_store = NotingLeaseStore(kube_api, namespace, "watched", events, "b")
    b = candidate("b", b_store, stop_b)
    try:
        await eventually_async(lambda: b_store.reads >= 1, 30, what="b's first look at the Lease")
        assert events == ["a leads term 1"], "b took a Lease a holds and renews"
        stop_a.set()
        await a
        await eventually_async(lambda: "b leads term 2" in events, 60, what="b leading")
        assert events == ["a leads term 1", "a stopped", "b saw the Lease released", "b leads term 2"]
        assert b_store.reads == 2, "b looked once before the release and once when the watch woke it"
    finally:
        stop_a.set()
        stop_b.set()
        await asyncio.gather(a, b)
