"""The supervisor every long-lived coreapp task runs under: a failure is logged with its reason and
restarted, or brings the role down; nothing ends silently. Events, not sleeps, order each step."""

from __future__ import annotations

import asyncio
import logging

import pytest

from wacluster.runtime.supervision import Policy, RoleFailed, Supervisor

pytestmark = pytest.mark.unit
log = logging.getLogger("test.supervision")


def supervisor(**kw) -> Supervisor:
    return Supervisor(log, restart_pause=0, **kw)


class Flaky:
    """A task that fails `failures` times with ConnectionResetError, then runs until cancelled."""

    def __init__(self, failures: int) -> None:
        self.failures, self.runs = failures, 0
        self.running = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        if self.runs <= self.failures:
            raise ConnectionResetError(f"reset number {self.runs}")
        self.running.set()
        await asyncio.Event().wait()


async def test_a_failed_task_is_logged_with_its_reason_and_restarted(caplog):
    flaky = Flaky(failures=2)
    cleaned: list[BaseException | None] = []
    s = supervisor()
    s.add("sender", flaky.run, Policy.RESTART, cleaned.append)
    with caplog.at_level(logging.WARNING, logger=log.name):
        await s.run(flaky.running.wait)
    assert flaky.runs == 3
    assert [str(e) for e in cleaned] == ["reset number 1", "reset number 2"]
    restarts = [r.getMessage() for r in caplog.records if r.getMessage().startswith("restarting task sender")]
    assert len(restarts) == 2 and "ConnectionResetError('reset number 1')" in restarts[0]
    assert any(r.levelno == logging.ERROR and r.exc_info for r in caplog.records)


async def test_a_task_that_keeps_failing_brings_the_role_down():
    flaky = Flaky(failures=10)
    s = supervisor(restart_limit=3)
    s.add("sender", flaky.run, Policy.RESTART)
    with pytest.raises(RoleFailed, match="task sender stopped 4 times"):
        await s.run(asyncio.Event().wait)
    assert flaky.runs == 4


async def test_a_fatal_task_that_fails_brings_the_role_down_and_cancels_the_others():
    flaky = Flaky(failures=1)
    other = Flaky(failures=0)
    cancelled = asyncio.Event()

    async def main():
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    s = supervisor()
    s.add("other", other.run, Policy.RESTART)
    s.add("watchdog", flaky.run, Policy.FATAL)
    with pytest.raises(RoleFailed, match=r"task watchdog stopped: it failed: ConnectionResetError"):
        await s.run(main)
    assert cancelled.is_set() and flaky.runs == 1


async def test_a_long_lived_task_that_returns_counts_as_a_failure():
    async def returns() -> None:
        return None

    s = supervisor()
    s.add("listener", returns, Policy.FATAL)
    with pytest.raises(RoleFailed, match="it returned"):
        await s.run(asyncio.Event().wait)


async def test_when_main_returns_the_background_tasks_are_cancelled():
    background = Flaky(failures=0)
    s = supervisor()
    s.add("backlog", background.run, Policy.RESTART)
    await s.run(background.running.wait)
    assert background.runs == 1


async def test_when_main_fails_the_role_fails_with_its_reason():
    async def main():
        raise ValueError("the shard map is unreadable")

    s = supervisor()
    with pytest.raises(RoleFailed, match="the decision loop failed: ValueError"):
        await s.run(main, name="the decision loop")
