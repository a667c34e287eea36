"""The send budget of one shard owner towards the Cloud API: a token bucket that adapts.

The account's budget (`messagesPerSecond`, Meta's throughput per phone number) is split evenly by
shard: each owner paces its shard at `messages_per_second / shards`, with no traffic between
coreapps and nothing in PostgreSQL on the send path. The cost: a shard with nothing to send leaves
its share unused (a skewed load gets less than the account could take). Coordinating one budget
through PostgreSQL would use it fully but put a shared write on every send of every shard.

Two rules decide when a send may go. The schedule spaces sends `1 / rate` apart and keeps its
slots when the sender wakes late (a busy event loop), catching up at most `CATCH_UP` seconds:
dropped, every late wake-up would be lost and a loaded coreapp falls behind (it sent 75 % of its
rate before). The window caps what catching up may do: a send waits until the send `floor(rate)`
sends before it is more than `WINDOW` (1 s plus a margin for the network's jitter) in the past,
so no one-second window holds more than the rate, which is what Meta counts. A
throttling answer (130429 and the other account-wide codes) halves the rate; every
`RECOVER_EVERY` seconds without one it grows back by `RECOVER_STEP` of itself, up to the
configured rate. Pure: the caller passes the monotonic time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

MIN_RATE = 0.5          # messages per second a throttled owner never goes below
RECOVER_EVERY = 10.0    # seconds without throttling before each step up
RECOVER_STEP = 0.05     # each step up: +5 % of the current rate
CATCH_UP = 0.1          # seconds of slots a late sender may make up
WINDOW = 1.01           # Meta's one-second window, plus 10 ms for arrivals bunched on the way


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
    recent: deque[float] = field(default_factory=deque)  # the last floor(rate) sends

    def __post_init__(self) -> None:
        if self.ceiling <= 0:
            raise ValueError("a send rate must be positive")
        self.rate = self.rate or self.ceiling

    def wait(self, now: float) -> float:
        """Seconds until the next send may go (0: now)."""
        self._recover(now)
        at = self.next_at
        if len(self.recent) >= self._window_limit:
            at = max(at, self.recent[-self._window_limit] + WINDOW)
        return max(0.0, at - now)

    def take(self, now: float) -> None:
        """One send goes now (call once `wait` returned 0)."""
        self.next_at = max(self.next_at, now - CATCH_UP) + 1.0 / self.rate
        self.recent.append(now)
        while len(self.recent) > self._window_limit:
            self.recent.popleft()

    @property
    def _window_limit(self) -> int:
        return max(1, int(self.rate))

    def throttled(self, now: float) -> None:
        """The Cloud API said the account sends too fast: halve the pace."""
        self.rate = max(MIN_RATE, self.rate / 2)
        self.throttled_at = self.recovered_at = now
        self.next_at = max(self.next_at, now + 1.0 / self.rate)

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
