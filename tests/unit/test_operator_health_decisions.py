"""The operator's /healthz and /readyz decisions (controller/health.py), on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from wacluster.controller.health import HealthLimits, ObservedLeaseStore, OperatorHealth
from wacluster.domain.election import LockConflict, LockRecord, LockStore

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Kopf:
    alive = True

    def __call__(self) -> bool:
        return self.alive


def leader(clock: Clock, kopf: Kopf | None = None, watch_canary: bool = True) -> OperatorHealth:
    """A leader whose kopf beats and sees the Lease at the current time."""
    health = OperatorHealth(HealthLimits(), watch_canary=watch_canary, kopf_alive=kopf or Kopf(), monotonic=clock)
    health.started_leading(3)
    health.kopf_heartbeat()
    health.kopf_saw_lease()
    return health


def keep_renewing(health: OperatorHealth, clock: Clock, seconds: float, beat: bool = True, see: bool = True) -> None:
    """Let `seconds` pass while the main loop renews the Lease every 2 s (and kopf beats, sees it)."""
    for _ in range(int(seconds / 2)):
        clock.now += 2
        health.api_answered(LockRecord("me", 15, 3), wrote=True)
        if beat:
            health.kopf_heartbeat()
        if see:
            health.kopf_saw_lease()


def test_a_leader_with_kopf_running_is_live_and_ready_and_says_so():
    clock = Clock()
    health = leader(clock)
    keep_renewing(health, clock, 10)
    assert health.liveness().ok and health.readiness().ok
    assert "leader (term 3): kopf running" in health.readiness().reason
    assert "the Lease was renewed 0.0s ago" in health.liveness().reason


def test_a_leader_whose_kopf_thread_stopped_is_neither_live_nor_ready():
    clock, kopf = Clock(), Kopf()
    health = leader(clock, kopf)
    kopf.alive = False
    assert not health.liveness().ok and not health.readiness().ok
    assert health.liveness().reason == "leader (term 3): kopf's thread has stopped"


def test_a_leader_whose_kopf_loop_stopped_answering_is_not_live():
    clock = Clock()
    health = leader(clock)
    keep_renewing(health, clock, 12, beat=False)
    verdict = health.liveness()
    assert not verdict.ok
    assert "kopf's event loop has not answered for 12s" in verdict.reason


def test_a_leader_whose_kopf_is_still_starting_is_live_but_not_yet_ready():
    clock = Clock()
    health = OperatorHealth(HealthLimits(), kopf_alive=Kopf(), monotonic=clock)
    health.started_leading(1)
    clock.now += 5
    assert health.liveness().ok
    assert not health.readiness().ok
    assert health.readiness().reason == "leader (term 1): kopf is starting"
    clock.now += 60
    assert "has not started within 65s" in health.liveness().reason


def test_a_leader_that_cannot_renew_its_lease_past_its_duration_is_not_live_and_says_a_standby_may_lead():
    clock = Clock()
    health = leader(clock)
    for _ in range(8):  # the main loop's requests hang: nothing is answered, kopf keeps beating
        clock.now += 2
        health.kopf_heartbeat()
        health.kopf_saw_lease()
    verdict = health.liveness()
    assert not verdict.ok
    assert "the operator Lease was last renewed 16s ago, longer than its 15s duration" in verdict.reason
    assert "a request to the API server hangs" in verdict.reason


def test_the_last_api_error_is_named_when_the_lease_is_not_renewed():
    clock = Clock()
    health = leader(clock)
    clock.now += 16
    health.kopf_heartbeat()
    health.api_failed(ConnectionError("connection refused"))
    assert "last error: ConnectionError: connection refused" in health.liveness().reason


def test_a_leader_whose_watch_no_longer_delivers_the_operator_lease_is_not_live():
    clock = Clock()
    health = leader(clock)
    keep_renewing(health, clock, 102, see=False)
    verdict = health.liveness()
    assert not verdict.ok
    assert "kopf's watch streams are stale" in verdict.reason and "for 102s" in verdict.reason


def test_the_watch_canary_is_not_judged_where_kopf_does_not_watch_the_leases_namespace():
    clock = Clock()
    health = leader(clock, watch_canary=False)
    keep_renewing(health, clock, 200, see=False)
    assert health.liveness().ok


def test_a_standby_that_hears_from_the_api_server_is_ready_and_names_the_holder():
    clock = Clock()
    health = OperatorHealth(monotonic=clock)
    health.api_answered(LockRecord("replica-a", 15, 4), wrote=False)
    clock.now += 1
    verdict = health.readiness()
    assert verdict.ok
    assert verdict.reason == "standby, campaigning: replica-a holds the Lease; the API server answered 1.0s ago"
    assert health.liveness().ok


def test_a_standby_that_lost_the_api_server_is_not_ready_and_names_the_error_but_stays_live():
    clock = Clock()
    health = OperatorHealth(monotonic=clock)
    health.api_answered(LockRecord("replica-a", 15, 4), wrote=False)
    clock.now += 20
    health.api_failed(RuntimeError("(401)\nReason: Unauthorized"))
    verdict = health.readiness()
    assert not verdict.ok
    assert verdict.reason == "standby: the API server has not answered for 20s (RuntimeError: (401))"
    assert health.liveness().ok


def test_an_api_error_is_named_by_its_http_status_and_reason():
    class ApiException(Exception):
        status, reason = 403, "Forbidden"

    health = OperatorHealth(monotonic=Clock())
    health.api_failed(ApiException("(403)\nReason: Forbidden\nHTTP response headers: ..."))
    assert health.api_error == "ApiException: HTTP 403 Forbidden"


def test_a_replica_that_never_reached_the_api_server_is_not_ready():
    health = OperatorHealth(monotonic=Clock())
    health.api_failed(RuntimeError("401 Unauthorized"))
    assert health.readiness().reason == "standby: no answer from the API server yet (RuntimeError: 401 Unauthorized)"


def test_a_stopping_replica_is_not_ready():
    clock = Clock()
    health = leader(clock)
    health.stopping = True
    assert health.readiness().reason == "stopping: the Lease is being released"


class OneAnswerStore(LockStore):
    def __init__(self, outcome) -> None:
        self.outcome = outcome

    async def _answer(self):
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome

    async def get(self):
        return await self._answer()

    async def create(self, record):
        return await self._answer()

    async def update(self, record):
        return await self._answer()


def test_the_observed_store_reports_renewals_conflicts_and_failures():
    clock = Clock()
    health = leader(clock)
    clock.now += 5
    record = LockRecord("me", 15, 3)
    asyncio.run(ObservedLeaseStore(OneAnswerStore(record), health).update(record))
    assert health.lease_written_at == clock.now and health.holder == "me"

    clock.now += 5
    with pytest.raises(LockConflict):
        asyncio.run(ObservedLeaseStore(OneAnswerStore(LockConflict("x")), health).update(record))
    assert health.api_answered_at == clock.now and health.lease_written_at == clock.now - 5

    with pytest.raises(OSError):
        asyncio.run(ObservedLeaseStore(OneAnswerStore(OSError("no route to host")), health).get())
    assert health.api_error == "OSError: no route to host"
