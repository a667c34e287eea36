"""Failed logins per client: after `limit` failures within `window` seconds a client is refused
until its oldest failure leaves the window, so guessing the admin password costs time and a
flood of logins cannot keep the API busy hashing and querying. Successful logins count nothing."""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

# Clients remembered at most; the least recently failing are forgotten first.
MAX_CLIENTS = 10_000


@dataclass
class FailedLogins:
    limit: int = 20
    window: float = 60.0
    _failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def retry_after(self, client: str, now: float) -> float:
        """Seconds until `client` may try again; 0 when it may now."""
        failures = self._failures.get(client)
        if not failures:
            return 0.0
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) < self.limit:
            return 0.0
        return failures[0] + self.window - now

    def failed(self, client: str, now: float) -> None:
        failures = self._failures.setdefault(client, deque(maxlen=self.limit))
        failures.append(now)
        self._failures.move_to_end(client)
        while len(self._failures) > MAX_CLIENTS:
            self._failures.popitem(last=False)
