"""The Cloud send pacer (domain/pacing.py): spaced sends within the shard's share, counted by
when their requests leave, lowered by a fifth (and the jitter margin doubled) once per throttle
episode, back up by 5 % per 10 s without one."""

from __future__ import annotations

import bisect
import random

import pytest

from wacluster.domain.pacing import JITTER_FIRST, JITTER_MAX, MIN_RATE, SendPacer, shard_rate

pytestmark = pytest.mark.unit


def sends_within(pacer: SendPacer, start: float, seconds: float) -> int:
    """How many sends the pacer lets go in [start, start + seconds) when asked as often as allowed."""
    now, count = start, 0
    while True:
        now += pacer.wait(now)
        if now >= start + seconds:
            return count
        pacer.left(pacer.take(now), now)
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
        pacer.left(pacer.take(now), now)
        sent.append(now)
    achieved = len(sent) / (sent[-1] - sent[0])
    assert achieved >= 0.98 * rate
    window_max = max(bisect.bisect_left(sent, t + 1.0) - i for i, t in enumerate(sent))
    assert window_max <= rate


@pytest.mark.parametrize("rate", [80, 250, 1000])
def test_sends_waiting_for_a_connection_at_the_start_of_a_burst_never_put_more_than_the_rate_in_a_second(rate):
    """Bursts of sends after a quiet minute: the first 16 of each wait 40-150 ms for a new
    connection before their requests leave, the others leave within 0-3 ms on warm connections,
    and each arrives 5 ms (± 1 ms of jitter) after it left. Counted by release, the late ones
    arrived bunched with later sends and Meta's window saw more than the rate (the 130429s of the
    first second of each burst, measured by bench/cloud_pacing.py). No one-second window of
    arrivals holds more than the rate, and the burst goes at least at 97 % of it."""
    rng = random.Random(rate)
    pacer = SendPacer(ceiling=rate)
    arrivals, departures, now = [], [], 100.0  # departures: (leave time, ticket)
    for burst_start in (100.0, 160.0, 220.0):
        now, released = max(now, burst_start), 0
        burst_arrivals = []
        while released < 20 * rate:
            for at, ticket in [d for d in departures if d[0] <= now]:
                pacer.left(ticket, at)
                departures.remove((at, ticket))
            wait = pacer.wait(now)
            if wait > 0:
                now += min([wait] + [at - now for at, _ in departures if at > now])
                continue
            ticket = pacer.take(now)
            leave = now + (rng.uniform(0.04, 0.15) if released < 16 else rng.uniform(0, 0.003))
            departures.append((leave, ticket))
            burst_arrivals.append(leave + 0.005 + rng.uniform(-0.001, 0.001))
            released += 1
        arrivals += burst_arrivals
        burst_arrivals.sort()
        assert len(burst_arrivals) / (burst_arrivals[-1] - burst_arrivals[0]) >= 0.97 * rate
    arrivals.sort()
    window_max = max(bisect.bisect_left(arrivals, t + 1.0) - i for i, t in enumerate(arrivals))
    assert window_max <= rate


def test_a_send_that_never_leaves_holds_up_only_until_it_gives_up():
    pacer = SendPacer(ceiling=2)
    stuck = pacer.take(0.0)
    pacer.left(pacer.take(0.5), 0.5)
    assert pacer.wait(1.0) > 0  # the stuck one may still arrive: nothing more may go
    pacer.left(stuck, 20.0)  # it gave up (a timeout) at 20 s
    assert pacer.wait(20.0) == pytest.approx(1 + JITTER_FIRST)
    assert pacer.wait(21 + JITTER_FIRST) == 0


def test_throttling_lowers_the_rate_by_a_fifth_and_quiet_time_raises_it_by_five_percent_per_ten_seconds():
    pacer = SendPacer(ceiling=80)
    pacer.throttled(0.0)
    assert pacer.rate == 64
    pacer.wait(9.9)
    assert pacer.rate == 64
    pacer.wait(10.0)
    assert pacer.rate == pytest.approx(64 * 1.05)
    pacer.wait(30.0)
    assert pacer.rate == pytest.approx(64 * 1.05 ** 3)
    pacer.wait(10_000.0)
    assert pacer.rate == 80


def test_each_throttle_episode_widens_the_jitter_margin_of_the_window_up_to_its_limit():
    pacer = SendPacer(ceiling=10)
    assert pacer.jitter == JITTER_FIRST
    sent = [pacer.take(t / 10) for t in range(10)]
    for n, ticket in enumerate(sent):
        pacer.left(ticket, n / 10)
    assert pacer.wait(1.0) == pytest.approx(JITTER_FIRST)  # the 11th: a second and the margin after the 1st
    pacer.throttled(2.0)
    assert pacer.jitter == 2 * JITTER_FIRST
    for n in range(10):
        pacer.throttled(3.0 + n)
    assert pacer.jitter == JITTER_MAX


def test_answers_to_sends_released_before_a_throttle_episode_change_nothing_more():
    """A burst of 130429 answers to sends that left together halved the rate once per answer
    (80 a second became 20 within milliseconds, measured by bench/cloud_pacing.py)."""
    pacer = SendPacer(ceiling=80)
    assert pacer.throttled(10.0, released=9.95)
    assert not pacer.throttled(10.003, released=9.96)
    assert not pacer.throttled(10.02, released=9.99)
    assert (pacer.rate, pacer.jitter) == (64, 2 * JITTER_FIRST)
    assert pacer.throttled(11.0, released=10.5)  # sent at the lower pace and still too fast
    assert pacer.rate == pytest.approx(51.2)


def test_repeated_throttling_never_stops_sending():
    pacer = SendPacer(ceiling=80)
    for _ in range(40):
        pacer.throttled(0.0)
    assert pacer.rate == MIN_RATE
    assert pacer.wait(0.0) == pytest.approx(1 / MIN_RATE)


def test_a_lower_ceiling_applies_at_once():
    pacer = SendPacer(ceiling=80)
    pacer.set_ceiling(40)
    assert pacer.rate == 40
    assert sends_within(pacer, 0.0, 1.0) == 40
