"""The webhook retry schedule: exponential from callback_backoff_delay_ms, capped at
max_callback_backoff_delay_ms, each delay jittered within its upper half; a day to live."""

from __future__ import annotations

import random

import pytest

from wacluster.db.settings import DEFAULTS
from wacluster.runtime.webapp.webhooks import RetryPolicy, backoff

pytestmark = pytest.mark.unit


def test_defaults_are_the_on_premises_ones_and_a_day_to_live():
    assert RetryPolicy.from_settings(DEFAULTS) == RetryPolicy(base=3.0, cap=900.0, dead_after=86400.0)


def test_each_delay_lies_in_the_upper_half_of_its_doubling_capped_step():
    rng = random.Random(7)
    for attempt in range(1, 40):
        full = min(900.0, 3.0 * 2 ** (attempt - 1))
        for _ in range(50):
            assert full / 2 <= backoff(attempt, 3.0, 900.0, rng) <= full


def test_a_night_of_failures_takes_about_a_hundred_attempts_at_the_defaults():
    # Why an age bound rather than a count: ~9 attempts reach the 15 min cap, then ~4 an hour.
    rng, elapsed, attempt = random.Random(1), 0.0, 0
    while elapsed < 12 * 3600:
        attempt += 1
        elapsed += backoff(attempt, 3.0, 900.0, rng)
    assert 50 <= attempt <= 110
