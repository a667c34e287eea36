"""Every long-lived task of a role (coreapp, master, webapp) runs under one supervisor, in one
asyncio.TaskGroup.

A task that fails (or returns: a long-lived task never should) is logged with its exception and
then, by its policy, either restarted with the reason in the log (a few times in a window, then
it counts as fatal), or takes the whole role down: `run` raises `RoleFailed`, the entry point
exits non-zero, Kubernetes restarts the pod (and a coreapp's shard fails over). Nothing ends
silently.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable


class Policy(enum.Enum):
    RESTART = "restart"  # log, restart after a short pause; too many failures in a row are fatal
    FATAL = "fatal"      # log, bring the role down


class RoleFailed(RuntimeError):
    """A supervised task failed for good; the role must stop so its shard fails over."""


@dataclass
class _Task:
    name: str
    run: Callable[[], Awaitable[None]]
    policy: Policy
    on_failure: Callable[[BaseException | None], None] | None
    finished: asyncio.Event | None = None
    failures: list[float] = field(default_factory=list)


class Supervisor:
    """Runs `main` with the registered background tasks alongside; when `main` returns, the
    background tasks are cancelled and `run` returns. Used once."""

    def __init__(self, log: logging.Logger, restart_limit: int = 5, restart_window: float = 60.0,
                 restart_pause: float = 0.5) -> None:
        self.log = log
        self.restart_limit, self.restart_window, self.restart_pause = restart_limit, restart_window, restart_pause
        self._tasks: list[_Task] = []

    def add(self, name: str, run: Callable[[], Awaitable[None]], policy: Policy,
            on_failure: Callable[[BaseException | None], None] | None = None,
            finished: asyncio.Event | None = None) -> None:
        """Supervise `run()` under `name`; `on_failure(exc)` cleans up after a failure, before
        the restart or the stop (exc is None when the task returned). A task given `finished`
        may return once that event is set (e.g. an election that released its Lease on stop)."""
        self._tasks.append(_Task(name, run, policy, on_failure, finished))

    async def run(self, main: Callable[[], Awaitable[None]], name: str = "main") -> None:
        """Run until `main` returns; raises RoleFailed when `main` or a task fails for good."""
        try:
            async with asyncio.TaskGroup() as group:
                background = [group.create_task(self._keep(task), name=task.name) for task in self._tasks]
                await self._main(main, name)
                for task in background:
                    task.cancel()
        except BaseExceptionGroup as group:
            failures = group.subgroup(RoleFailed)
            if failures is None:
                raise
            raise _first(failures) from None

    async def _main(self, main: Callable[[], Awaitable[None]], name: str) -> None:
        try:
            await main()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.log.error("%s failed: %r", name, exc, exc_info=exc)
            raise RoleFailed(f"{name} failed: {exc!r}") from exc

    async def _keep(self, task: _Task) -> None:
        while True:
            error: BaseException | None = None
            try:
                await task.run()
                if task.finished is not None and task.finished.is_set():
                    return
                reason = "it returned, and it should run as long as the role"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error, reason = exc, f"it failed: {exc!r}"
                self.log.error("task %s failed: %r", task.name, exc, exc_info=exc)
            if task.on_failure is not None:
                try:
                    task.on_failure(error)
                except Exception as exc:  # a cleanup must not hide the failure it cleans up after
                    self.log.error("cleaning up after task %s failed too: %r", task.name, exc, exc_info=exc)
            now = time.monotonic()
            task.failures = [t for t in task.failures if now - t < self.restart_window] + [now]
            if task.policy is Policy.FATAL:
                raise RoleFailed(f"task {task.name} stopped: {reason}")
            if len(task.failures) > self.restart_limit:
                raise RoleFailed(f"task {task.name} stopped {len(task.failures)} times within "
                                 f"{self.restart_window:g}s; the last time {reason}")
            self.log.warning("restarting task %s because %s (failure %d within %gs)", task.name, reason,
                             len(task.failures), self.restart_window)
            await asyncio.sleep(self.restart_pause)


def _first(group: BaseExceptionGroup) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
