"""The coreapp's state: one Enum and one table of the transitions allowed between its values.

A coreapp starts, stands by until a master promotes it, takes its shard over (lease confirmed,
gateway connected), serves it, and gives it up: fenced (lease lost, revoked, replaced) it stands
by again; stopping (SIGTERM) it drains, hands the shard off and stops; asked by the primary master
for maintenance (fenced, switchover) it drains and hands the shard off the same way, then stands by. Every question the rest of
the coreapp asks ("may I accept a message?", "may I send?", "am I stopping?") is answered from
the state alone, so no combination of flags can say two things at once. A transition the table
does not list is a bug and raises `IllegalTransition`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class CoreappState(enum.Enum):
    STARTING = "starting"        # registering itself, checking the schema
    STANDBY = "standby"          # owns no shard; a master may promote it
    TAKING_OVER = "taking over"  # promoted: confirming the lease, connecting the gateway
    SERVING = "serving"          # owns the shard: accepts, sends, renews
    DRAINING = "draining"        # handing off: accepts nothing new, sends what it holds
    HANDING_OFF = "handing off"  # fenced and released; stops after a successor, or stands by again
    STOPPED = "stopped"          # deregistered; the process ends


S = CoreappState

TRANSITIONS: dict[CoreappState, frozenset[CoreappState]] = {
    S.STARTING: frozenset({S.STANDBY, S.STOPPED}),
    S.STANDBY: frozenset({S.TAKING_OVER, S.STOPPED}),
    S.TAKING_OVER: frozenset({S.SERVING, S.STANDBY}),
    S.SERVING: frozenset({S.STANDBY, S.DRAINING}),
    S.DRAINING: frozenset({S.HANDING_OFF}),
    S.HANDING_OFF: frozenset({S.STOPPED, S.STANDBY}),
    S.STOPPED: frozenset(),
}

_ACCEPTS = frozenset({S.SERVING})
_SENDS = frozenset({S.SERVING, S.DRAINING})
_STOPPING = frozenset({S.DRAINING, S.HANDING_OFF, S.STOPPED})


class IllegalTransition(RuntimeError):
    """A move the transition table does not allow: a bug in the coreapp, never a runtime event."""


@dataclass
class Lifecycle:
    """The current state and the one way to change it."""

    state: CoreappState = S.STARTING
    history: list[tuple[CoreappState, CoreappState, str]] = field(default_factory=list)

    def move(self, to: CoreappState, reason: str) -> CoreappState:
        """Change to `to` (the table must allow it); returns the state left."""
        if to not in TRANSITIONS[self.state]:
            raise IllegalTransition(f"a coreapp cannot go from {self.state.value} to {to.value} ({reason})")
        left, self.state = self.state, to
        self.history.append((left, to, reason))
        del self.history[:-20]  # the recent story, for logs and tests; not an audit trail
        return left

    @property
    def accepts_messages(self) -> bool:
        """New messages may be claimed (from webapps or the backlog) only while serving."""
        return self.state in _ACCEPTS

    @property
    def sends(self) -> bool:
        """Messages in hand may go to the gateway while serving or draining (the lease decides too)."""
        return self.state in _SENDS

    @property
    def holds_shard(self) -> bool:
        return self.state in _SENDS

    @property
    def stopping(self) -> bool:
        return self.state in _STOPPING
