"""The operator's liveness and readiness (/healthz, /readyz), decided from what its loops report.

The main loop reports the election (every Lease read and write, through `ObservedLeaseStore`);
kopf's own loop reports a heartbeat and every sighting of the operator Lease in its watch streams
(the Lease is renewed every retry period, so its watch is a canary: kopf reopens a stream that is
silent past its inactivity timeout, and a canary unseen for longer means the watching is stuck).
Each answer says why, so `kubectl describe pod` tells an operator on call what is wrong.

Liveness fails only where a restart helps: the leader's kopf has stopped, its loop does not answer,
its watch no longer delivers, or the Lease has not been renewed for longer than its duration (a
hung request never lets the election step down, and a standby may already lead). A standby is
live while the main loop answers, which the answer itself shows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from wacluster.domain.election import LockConflict, LockRecord, LockStore


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str


@dataclass(frozen=True)
class HealthLimits:
    kopf_silence: float = 10.0     # kopf's loop beats every second
    lease_renewal: float = 15.0    # the Lease's duration: past it a standby may take over
    api_silence: float = 15.0      # a standby's last answer from the API server
    watch_silence: float = 100.0   # kopf reopens a silent stream at 70 s; the canary comes within 2 s
    kopf_start: float = 60.0       # from kopf's thread start to its first heartbeat


class OperatorHealth:
    """What the loops last reported; each report is one attribute store, safe from kopf's thread."""

    def __init__(self, limits: HealthLimits = HealthLimits(), watch_canary: bool = True,
                 kopf_alive: Callable[[], bool] = lambda: False,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.watch_canary = watch_canary  # False when kopf does not watch the Lease's namespace
        self.kopf_alive = kopf_alive
        self._now = monotonic
        self.leading = False
        self.term = 0
        self.stopping = False
        self.holder: str | None = None
        self.kopf_started_at: float | None = None
        self.kopf_beat_at: float | None = None
        self.lease_seen_by_kopf_at: float | None = None
        self.api_answered_at: float | None = None
        self.api_error: str | None = None
        self.lease_written_at: float | None = None

    # --- reports ---------------------------------------------------------------------------------

    def started_leading(self, term: int) -> None:
        self.leading, self.term = True, term
        now = self._now()
        self.lease_written_at = now
        self.kopf_started_at, self.kopf_beat_at, self.lease_seen_by_kopf_at = now, None, None

    def stopped_leading(self) -> None:
        self.leading = False

    def kopf_heartbeat(self) -> None:
        self.kopf_beat_at = self._now()

    def kopf_saw_lease(self) -> None:
        self.lease_seen_by_kopf_at = self._now()

    def api_answered(self, record: LockRecord | None, wrote: bool) -> None:
        now = self._now()
        self.api_answered_at, self.api_error = now, None
        self.holder = record.holder if record else None
        if wrote and self.leading:
            self.lease_written_at = now

    def api_conflicted(self) -> None:
        self.api_answered_at, self.api_error = self._now(), None

    def api_failed(self, error: BaseException) -> None:
        # The API client's errors carry the HTTP status and reason; their text spans many lines.
        status, reason = getattr(error, "status", None), getattr(error, "reason", None)
        detail = f"HTTP {status} {reason}" if status and reason else (str(error).strip().splitlines() or [""])[0]
        self.api_error = f"{type(error).__name__}: {detail}" if detail else type(error).__name__

    # --- decisions -------------------------------------------------------------------------------

    def liveness(self) -> Verdict:
        if not self.leading:
            return Verdict(True, "standby: the main loop answers")
        problem = self._kopf_problem(starting_is_fine=True) or self._lease_problem() or self._watch_problem()
        if problem:
            return Verdict(False, f"leader (term {self.term}): {problem}")
        return Verdict(True, f"leader (term {self.term}): {self._leader_summary()}")

    def readiness(self) -> Verdict:
        if self.stopping:
            return Verdict(False, "stopping: the Lease is being released")
        if self.leading:
            problem = self._kopf_problem(starting_is_fine=False)
            if problem:
                return Verdict(False, f"leader (term {self.term}): {problem}")
            return Verdict(True, f"leader (term {self.term}): {self._leader_summary()}")
        if self.api_answered_at is None:
            return Verdict(False, "standby: no answer from the API server yet"
                           + (f" ({self.api_error})" if self.api_error else ""))
        silence = self._since(self.api_answered_at)
        if silence > self.limits.api_silence:
            return Verdict(False, f"standby: the API server has not answered for {silence:.0f}s"
                           + (f" ({self.api_error})" if self.api_error else ""))
        holder = f"{self.holder} holds the Lease" if self.holder else "the Lease is free"
        return Verdict(True, f"standby, campaigning: {holder}; the API server answered {silence:.1f}s ago")

    def _kopf_problem(self, starting_is_fine: bool) -> str | None:
        if not self.kopf_alive():
            return "kopf's thread has stopped"
        if self.kopf_beat_at is None:
            waited = self._since(self.kopf_started_at)
            if waited > self.limits.kopf_start:
                return f"kopf's event loop has not started within {waited:.0f}s"
            return None if starting_is_fine else "kopf is starting"
        silence = self._since(self.kopf_beat_at)
        if silence > self.limits.kopf_silence:
            return f"kopf's event loop has not answered for {silence:.0f}s"
        return None

    def _lease_problem(self) -> str | None:
        silence = self._since(self.lease_written_at)
        if silence > self.limits.lease_renewal:
            cause = f" (last error: {self.api_error})" if self.api_error else " (a request to the API server hangs)"
            return (f"the operator Lease was last renewed {silence:.0f}s ago, longer than its "
                    f"{self.limits.lease_renewal:.0f}s duration: a standby may lead by now{cause}")
        return None

    def _watch_problem(self) -> str | None:
        if not self.watch_canary:
            return None
        seen = self.lease_seen_by_kopf_at or self.kopf_started_at
        silence = self._since(seen)
        if silence > self.limits.watch_silence:
            return (f"kopf's watch streams are stale: the operator Lease, renewed every few seconds, "
                    f"has not reached kopf for {silence:.0f}s")
        return None

    def _leader_summary(self) -> str:
        parts = ["kopf running"]
        if self.kopf_beat_at is not None:
            parts[0] += f", its loop answered {self._since(self.kopf_beat_at):.1f}s ago"
        if self.watch_canary and self.lease_seen_by_kopf_at is not None:
            parts.append(f"its watch saw the operator Lease {self._since(self.lease_seen_by_kopf_at):.1f}s ago")
        parts.append(f"the Lease was renewed {self._since(self.lease_written_at):.1f}s ago")
        return "; ".join(parts)

    def _since(self, moment: float | None) -> float:
        return 0.0 if moment is None else self._now() - moment


class ObservedLeaseStore(LockStore):
    """A LockStore that reports every answer and failure of the store it wraps to `health`."""

    def __init__(self, store: LockStore, health: OperatorHealth) -> None:
        self.store = store
        self.health = health

    async def get(self) -> LockRecord | None:
        return await self._observe(self.store.get(), wrote=False)

    async def create(self, record: LockRecord) -> LockRecord:
        return await self._observe(self.store.create(record), wrote=True)

    async def update(self, record: LockRecord) -> LockRecord:
        return await self._observe(self.store.update(record), wrote=True)

    async def _observe(self, call, wrote: bool):
        try:
            record = await call
        except LockConflict:
            # A conflict is an answer too: the API server is there, another replica wrote first.
            self.health.api_conflicted()
            raise
        except Exception as exc:
            self.health.api_failed(exc)
            raise
        self.health.api_answered(record, wrote)
        return record

    def __getattr__(self, name: str):
        # watch_releases and the rest of the wrapped store's own API.
        return getattr(self.store, name)
