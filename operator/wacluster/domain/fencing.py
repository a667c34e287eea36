"""A coreapp's right to serve its shard: a lease it must keep renewing.

Timing argument (why two coreapps never serve one shard at once):

1. The coreapp renews with `UPDATE shard_map SET lease_until = now() + ttl WHERE shard = k AND
   epoch = e AND coreapp = me AND NOT revoked`. It notes its own monotonic time `t_send`
   *before* sending the statement. The database evaluates `now()` at or after `t_send`, so in
   real time `lease_until >= t_send + ttl`.
2. The coreapp serves only while `monotonic() < t_send + ttl * (1 - margin)`; past that it
   disconnects from the gateway and refuses requests, whether or not it can reach anyone.
   The margin absorbs clock-rate differences between the two machines.
3. A master promotes a successor with `... WHERE lease_until <= now()` (database clock), i.e.
   only after `t_send + ttl`, which is after the old owner stopped (step 2).
4. A revoked owner cannot renew (step 1 matches no row) and runs out by step 2.

The lease ttl is `unhealthy_interval - heartbeat_interval` (see `ha.lease_ttl`): shorter than the
unhealthy interval minus one heartbeat, so a coreapp whose masters cannot reach it has stopped
serving by the time the heartbeat rule would let a master replace it. A SIGSTOPped coreapp that
resumes finds its deadline passed and stops before sending anything (every send checks `valid`).
Renewals happen every `ttl / 3`, so two lost renewals in a row are survived.
"""

from __future__ import annotations

from dataclasses import dataclass

MARGIN = 0.05


@dataclass
class ShardLease:
    shard: int
    epoch: int
    ttl: float
    deadline: float = 0.0  # monotonic seconds; 0 = not yet confirmed

    @property
    def renew_every(self) -> float:
        return self.ttl / 3

    def confirmed(self, sent_at: float, clock_rate: float = 1.0) -> None:
        """A renewal sent at monotonic `sent_at` succeeded. Assigned, not maximised: a renewal
        with a shorter ttl also shortened `lease_until` in the database. `clock_rate` bounds how
        much faster the database's clock runs than ours (domain/clock_rate.py): the lease it
        granted ends that much sooner by our clock."""
        self.deadline = sent_at + self._serving_time(clock_rate)

    def in_doubt(self, sent_at: float, clock_rate: float = 1.0) -> None:
        """A renewal sent at `sent_at` with the current ttl failed without an answer: it may have
        committed (and shortened `lease_until` to the new ttl) or not (the last confirmed lease
        stands). Serve no longer than the shorter of the two allows."""
        self.deadline = min(self.deadline, sent_at + self._serving_time(clock_rate))

    def _serving_time(self, clock_rate: float) -> float:
        return self.ttl * (1 - MARGIN) / max(1.0, clock_rate)

    def valid(self, now: float) -> bool:
        return now < self.deadline

    def remaining(self, now: float) -> float:
        return max(0.0, self.deadline - now)
