"""The database clock's rate, bounded from above from samples taken over real round trips
(domain/clock_rate.py), and a shard lease that ends sooner when the database's clock runs fast."""

from __future__ import annotations

import random
import time

import pytest

from wacluster.domain.clock_rate import ClockRate
from wacluster.domain.fencing import MARGIN, ShardLease

pytestmark = pytest.mark.unit


def samples(rate: float, seconds: float, every: float, rng: random.Random) -> list[tuple[float, float, float]]:
    """(before, after, db) as a coreapp would see them: the database read its clock, running at
    `rate`, somewhere inside a round trip of random length."""
    out, t = [], 100.0
    while t < 100.0 + seconds:
        rtt = rng.uniform(0.0005, 0.2)
        read_at = t + rng.uniform(0, rtt)
        out.append((t, t + rtt, 5000.0 + (read_at - 100.0) * rate))
        t += every
    return out


@pytest.mark.parametrize("rate", [0.97, 1.0, 1.0005, 1.04, 1.1, 1.3])
def test_the_bound_is_never_below_the_true_rate_and_close_to_it(rate):
    rng = random.Random(7)
    clock = ClockRate(window=600, min_span=20)
    for before, after, db in samples(rate, 300, 5, rng):
        clock.sample(before, after, db)
    bound = clock.bound()
    assert bound >= max(1.0, rate)
    assert bound <= max(1.0, rate) * 1.003  # round trips of up to 0.2 s over a 300 s span


def test_without_enough_span_there_is_no_evidence():
    clock = ClockRate(min_span=20)
    assert clock.bound() == 1.0
    clock.sample(0.0, 0.01, 1000.0)
    clock.sample(10.0, 10.01, 1020.0)  # twice as fast, but over 10 s only
    assert clock.bound() == 1.0


def test_old_samples_leave_the_window():
    clock = ClockRate(window=100, min_span=20)
    clock.sample(0.0, 0.0, 0.0)
    clock.sample(50.0, 50.0, 100.0)    # ran twice as fast, long ago
    for t in range(60, 400, 5):
        clock.sample(float(t), float(t), 100.0 + (t - 50))  # as fast as ours since
    assert clock.bound() == pytest.approx(1.0)


def test_a_lease_granted_by_a_fast_database_clock_ends_that_much_sooner_by_ours():
    ttl = 0.6
    lease = ShardLease(0, 1, ttl)
    sent = time.monotonic()
    lease.confirmed(sent, clock_rate=1.2)
    assert lease.deadline == pytest.approx(sent + ttl * (1 - MARGIN) / 1.2)
    lease.in_doubt(sent + 0.1, clock_rate=1.5)
    assert lease.deadline == pytest.approx(sent + 0.1 + ttl * (1 - MARGIN) / 1.5)
    slow = ShardLease(0, 1, ttl)
    slow.confirmed(sent, clock_rate=0.9)  # a slow database clock never lengthens the lease
    assert slow.deadline == pytest.approx(sent + ttl * (1 - MARGIN))
