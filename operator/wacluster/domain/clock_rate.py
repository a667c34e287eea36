"""How fast the database's clock runs against this process's monotonic clock, bounded from above.

The fencing argument (domain/fencing.py) needs the coreapp to stop serving before the database
ends its lease. The database ends it by its own clock (`lease_until <= now()`); the coreapp stops
by its monotonic clock. If the database's clock ran faster by a factor r, a lease of ttl database
seconds would end after ttl / r of the coreapp's seconds. `MARGIN` covers r up to 1/(1 - MARGIN)
(about 1.053); this bound lets the coreapp cover whatever it measures beyond that, and say so.

A sample is one reading of the database's clock, known to have happened between two readings of
ours (`before`, `after`). Between two samples the database's clock advanced `db_new - db_old`
while ours advanced at least `new.before - old.after`, so their ratio bounds the rate from above
whatever the round trips were. The bound is taken over the oldest and newest samples within
`window` seconds, once they span at least `min_span`; before that it is 1.0 (no evidence).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    before: float  # our monotonic seconds before the query left
    after: float   # our monotonic seconds after its answer came
    db: float      # the database's clock_timestamp() in seconds


class ClockRate:
    def __init__(self, window: float = 600.0, min_span: float = 20.0) -> None:
        self.window, self.min_span = window, min_span
        self._samples: deque[Sample] = deque()

    def sample(self, before: float, after: float, db: float) -> None:
        self._samples.append(Sample(before, after, db))
        while len(self._samples) > 2 and self._samples[-1].before - self._samples[1].after >= self.window:
            self._samples.popleft()

    def bound(self) -> float:
        """An upper bound of (database seconds per second of ours); 1.0 without enough evidence."""
        if len(self._samples) < 2:
            return 1.0
        old, new = self._samples[0], self._samples[-1]
        ours = new.before - old.after
        if ours < self.min_span:
            return 1.0
        return max(1.0, (new.db - old.db) / ours)
