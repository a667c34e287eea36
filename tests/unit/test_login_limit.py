"""Failed logins are limited per client and forgiven as they age."""

from __future__ import annotations

import pytest

from wacluster.domain import login_limit
from wacluster.domain.login_limit import FailedLogins

pytestmark = pytest.mark.unit


def test_a_client_is_refused_after_the_limit_until_its_oldest_failure_ages_out():
    limiter = FailedLogins(limit=3, window=60)
    for t in (0, 10, 20):
        assert limiter.retry_after("a", t) == 0
        limiter.failed("a", t)
    assert limiter.retry_after("a", 30) == 30  # the failure at 0 leaves the window at 60
    assert limiter.retry_after("b", 30) == 0   # another client is not affected
    assert limiter.retry_after("a", 60) == 0


def test_the_number_of_clients_remembered_is_bounded(monkeypatch):
    monkeypatch.setattr(login_limit, "MAX_CLIENTS", 5)
    limiter = FailedLogins(limit=1, window=60)
    for n in range(10):
        limiter.failed(f"client{n}", 0)
    assert limiter.retry_after("client0", 1) == 0   # forgotten
    assert limiter.retry_after("client9", 1) == 59  # remembered
