"""The one way tests, the demo and the benchmarks wait for something to become true.

`eventually(check, timeout=..., interval=..., what=...)` calls `check()` until it returns a truthy
value and returns that value. When `timeout` seconds pass first it raises `NotReached` (an
AssertionError, so a test fails rather than errors) saying what was awaited and what `check`
returned last. The timeout is a bound on how long to wait, never a claim about speed: pick it
generously; timing belongs to the benchmarks.

`check` is called at least once, and once more after the deadline has passed, so a condition that
became true during the last interval is still seen. Exceptions from `check` propagate unless their
type is listed in `ignore` (e.g. "object not found yet"); an ignored exception counts as "not yet"
and, if it is the last outcome, is shown in the failure.

`eventually_async` is the same for coroutines: `check` may return an awaitable, and the waiting
does not block the event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any, Awaitable, Callable


class NotReached(AssertionError):
    """The awaited condition did not hold within the timeout."""


class _Attempts:
    """The bookkeeping both variants share: the deadline, the last outcome and the failure."""

    def __init__(self, timeout: float, interval: float, what: str, ignore: tuple[type[BaseException], ...],
                 details: Callable[[], str] | None) -> None:
        if timeout < 0 or interval <= 0:
            raise ValueError("timeout must be >= 0 and interval > 0")
        self.timeout, self.interval, self.what, self.ignore, self.details = timeout, interval, what, ignore, details
        self.deadline = time.monotonic() + timeout
        self.last: Any = None
        self.final = False  # the attempt after the deadline has been made

    def outcome(self, value: Any) -> bool:
        """Record one result of `check`; True when it is the answer."""
        self.last = value
        return bool(value) and not isinstance(value, BaseException)

    def pause(self) -> float | None:
        """Seconds to wait before the next attempt; None when no attempt is left."""
        if self.final:
            return None
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self.final = True
            return 0.0
        return min(self.interval, remaining)

    def failure(self) -> NotReached:
        message = f"{self.what} not reached within {self.timeout:g}s (last: {self.last!r})"
        if self.details is not None:
            message += "\n" + self.details()
        return NotReached(message)


def eventually(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = "the condition",
               ignore: tuple[type[BaseException], ...] = (), details: Callable[[], str] | None = None) -> Any:
    """Poll `check` until it returns a truthy value and return it; raise NotReached after `timeout`.

    `details`, if given, is called on failure and its text appended (e.g. the tail of a log)."""
    attempts = _Attempts(timeout, interval, what, ignore, details)
    while True:
        try:
            value = check()
        except ignore as exc:
            value = exc
        if attempts.outcome(value):
            return value
        pause = attempts.pause()
        if pause is None:
            raise attempts.failure()
        time.sleep(pause)


async def eventually_async(check: Callable[[], Any | Awaitable[Any]], timeout: float = 30.0, interval: float = 0.1,
                           what: str = "the condition", ignore: tuple[type[BaseException], ...] = (),
                           details: Callable[[], str] | None = None) -> Any:
    """`eventually` for async code: `check` may be a coroutine function; waits with asyncio.sleep."""
    attempts = _Attempts(timeout, interval, what, ignore, details)
    while True:
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await value
        except ignore as exc:
            value = exc
        if attempts.outcome(value):
            return value
        pause = attempts.pause()
        if pause is None:
            raise attempts.failure()
        await asyncio.sleep(pause)
