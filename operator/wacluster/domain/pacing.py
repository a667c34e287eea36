"""The send budget of one shard owner towards the Cloud API: a token bucket that adapts.

The account's budget (`messagesPerSecond`, Meta's throughput per phone number) is split evenly by
shard: each owner paces its shard at `messages_per_second / shards`, with no traffic between
coreapps and nothing in PostgreSQL on the send path. The cost: a shard with nothing to send leaves
its share unused (a skewed load gets less than the account could take). Coordinating one budget
through PostgreSQL would use it fully but put a shared write on every send of every shard.

Two rules decide when a send may go. The schedule spaces sends `1 / rate` apart and keeps its
slots when the sender wakes late (a busy event loop), catching up at most `CATCH_UP` seconds:
dropped, every late wake-up would be lost and a loaded coreapp falls behind (it sent 75 % of its
rate before). The window caps what catching up may do, counted as Meta counts: by when requests
arrive, not when the sender released them. A released send *leaves* when its request is written to
the connection (`left`); until then it may wait for a connection to be opened (100 ms and more at
the start of a burst) while later sends overtake it on warm connections, and counted at release
the late ones arrived bunched with the rest (130429 in the first second of every burst). So a send
may go only once every send `floor(rate)` sends before it has left more than one second plus a
*jitter margin* ago: no one-second window of arrivals holds more than the rate, as long as the way
to Meta delays no request by more than the margin more than another. The margin costs its own
share of the rate (10 ms: 1 %).

A throttling answer (130429 and the other account-wide codes) says one of two things: the account's
real budget is lower than configured, or arrivals bunched by more than the margin (measured: a
loaded machine delayed requests by up to 126 ms). So each throttle episode lowers the rate by
`DECREASE` and doubles the margin (up to `JITTER_MAX`); answers to sends released before the last
lowering say only that the old pace was too fast and change nothing more (a burst of them once
halved the rate again and again: 80 a second became 20 within milliseconds). Every `RECOVER_EVERY`
seconds without a throttle the rate grows back by `RECOVER_STEP` of itself, up to the configured
rate; the margin stays what this session learnt. Pure: the caller passes the monotonic time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

MIN_RATE = 0.5          # messages per second a throttled owner never goes below
RECOVER_EVERY = 10.0    # seconds without throttling before each step up
RECOVER_STEP = 0.05     # each step up: +5 % of the current rate
CATCH_UP = 0.1          # seconds of slots a late sender may make up
WINDOW = 1.0            # Meta's window, in seconds
JITTER_FIRST = 0.01     # the margin for requests delayed on the way, to begin with
JITTER_MAX = 0.2        # the widest margin throttling may teach (the rate then costs 17 %)
DECREASE = 0.8          # the rate after a throttle episode, as a share of the rate before
NOT_LEFT_POLL = 0.002   # seconds between looks while an earlier send still waits for its connection


def shard_rate(messages_per_second: float, shards: int) -> float:
    """One owner's share of the account's budget."""
    return max(MIN_RATE, messages_per_second / max(1, shards))


@dataclass
class SendPacer:
    ceiling: float              # the configured share (messages per second)
    rate: float = 0.0           # the current pace; starts at the ceiling
    next_at: float = 0.0        # monotonic time of the next allowed send
    throttled_at: float | None = None  # last throttling answer
    recovered_at: float = 0.0   # last step up (or throttle)
    sends: deque[float | None] = field(default_factory=deque)  # the last sends' leave times (None: not yet)
    first: int = 0              # the ticket of sends[0]
    horizon: float = float("-inf")  # the latest leave time of the sends before those
    jitter: float = JITTER_FIRST   # the margin the window adds for requests delayed on the way

    def __post_init__(self) -> None:
        if self.ceiling <= 0:
            raise ValueError("a send rate must be positive")
        self.rate = self.rate or self.ceiling

    def wait(self, now: float) -> float:
        """Seconds until the next send may go (0: now)."""
        self._recover(now)
        limit = self._window_limit
        # The sends outside the last `limit - 1` count by their leave times: fold those that left.
        while len(self.sends) >= limit and self.sends[0] is not None:
            self.horizon = max(self.horizon, self.sends.popleft())
            self.first += 1
        if len(self.sends) >= limit:  # one of them has not left yet: its arrival is still to come
            return max(NOT_LEFT_POLL, self.next_at - now)
        return max(0.0, max(self.next_at, self.horizon + WINDOW + self.jitter) - now)

    def take(self, now: float) -> int:
        """One send is released now (call once `wait` returned 0); its ticket for `left`."""
        self.next_at = max(self.next_at, now - CATCH_UP) + 1.0 / self.rate
        self.sends.append(None)
        return self.first + len(self.sends) - 1

    def left(self, ticket: int, at: float) -> None:
        """The send's request was written to its connection at `at` (or it never will be: then
        the time it gave up). Only the first call for a ticket counts."""
        index = ticket - self.first
        if 0 <= index < len(self.sends) and self.sends[index] is None:
            self.sends[index] = at

    @property
    def _window_limit(self) -> int:
        return max(1, int(self.rate))

    def throttled(self, now: float, released: float | None = None) -> bool:
        """The Cloud API said the account sends too fast, answering a send released at `released`:
        a new episode (lower the rate, widen the margin) unless that send was released before the
        last one began. Whether it began one."""
        if released is not None and self.throttled_at is not None and released < self.throttled_at:
            return False
        self.rate = max(MIN_RATE, self.rate * DECREASE)
        self.jitter = min(JITTER_MAX, self.jitter * 2)
        self.throttled_at = self.recovered_at = now
        self.next_at = max(self.next_at, now + 1.0 / self.rate)
        return True

    def set_ceiling(self, ceiling: float) -> None:
        """A new share (the shard count or the budget changed); the pace never exceeds it."""
        self.ceiling = ceiling
        self.rate = min(self.rate, ceiling)

    def _recover(self, now: float) -> None:
        while self.rate < self.ceiling and now - self.recovered_at >= RECOVER_EVERY:
            self.recovered_at += RECOVER_EVERY
            self.rate = min(self.ceiling, self.rate * (1 + RECOVER_STEP))
        if self.rate >= self.ceiling:
            self.recovered_at = now
