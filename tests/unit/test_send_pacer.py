"""The Cloud send pacer (domain/pacing.py): spaced sends within the shard's share, halved on
throttling, back up by 5 % per 10 s without it."""

from __future__ import annotations

import bisect
import random

import pytest

from wacluster.domain.pacing import MIN_RATE, SendPacer, shard_rate

pytestmark = pytest.mark.unit


def sends_within(pacer: SendPacer, start: float, seconds: float) -> int:
    """How many sends the pacer lets go in [start, start + seconds) when asked as often as allowed."""
    now, count = start, 0
    while True:
        now += pacer.wait(now)
        if now >= start + seconds:
            return count
        pacer.take(now)
        count += 1


def test_the_account_budget_is_split_evenly_by_shard():
    assert shard_rate(80, 2) == 40
    assert shard_rate(1000, 32) == 31.25
    assert shard_rate(1, 8) == MIN_RATE


def test_a_pacer_never_sends_more_than_its_rate_in_any_second():
    pacer = SendPacer(ceiling=80)
    assert sends_within(pacer, 100.0, 1.0) == 80
    assert sends_within(pacer, 101.0, 1.0) <= 80


@pytest.mark.parametrize("rate", [40, 80, 250])
def test_a_sender_that_wakes_late_keeps_the_rate_and_never_exceeds_it_in_any_second(rate):
    """A busy event loop wakes the sender late by a few ms, now and then by 30 ms. The achieved
    rate stays within 2 % of the configured one (before: every late wake-up was lost), and no
    sliding one-second window holds more than `rate` sends (what Meta counts)."""
    rng = random.Random(rate)
    pacer = SendPacer(ceiling=rate)
    now, sent = 100.0, []
    while now < 160.0:
        now += pacer.wait(now) + rng.uniform(0, 0.005) + (0.03 if rng.random() < 0.01 else 0.0)
        pacer.take(now)
        sent.append(now)
    achieved = len(sent) / (sent[-1] - sent[0])
    assert achieved >= 0.98 * rate
    window_max = max(bisect.bisect_left(sent, t + 1.0) - i for i, t in enumerate(sent))
    assert window_max <= rate


def test_throttling_halves_the_rate_and_quiet_time_raises_it_by_five_percent_per_ten_seconds():
    pacer = SendPacer(ceiling=80)
    pacer.throttled(0.0)
    assert pacer.rate == 40
    pacer.wait(9.9)
    assert pacer.rate == 40
    pacer.wait(10.0)
    assert pacer.rate == pytest.approx(42)
    pacer.wait(30.0)
    assert pacer.rate == pytest.approx(40 * 1.05 ** 3)
    pacer.wait(10_000.0)
    assert pacer.rate == 80


def test_repeated_throttling_never_stops_sending():
    pacer = SendPacer(ceiling=80)
    for _ in range(20):
        pacer.throttled(0.0)
    assert pacer.rate == MIN_RATE
    assert pacer.wait(0.0) == pytest.approx(1 / MIN_RATE)


def test_a_lower_ceiling_applies_at_once():
    pacer = SendPacer(ceiling=80)
    pacer.set_ceiling(40)
    assert pacer.rate == 40
    assert sends_within(pacer, 0.0, 1.0) == 40
