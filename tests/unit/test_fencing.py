"""The coreapp's shard lease: it stops serving before any master may promote a successor."""

from __future__ import annotations

import pytest

from wacluster.domain.fencing import MARGIN, ShardLease
from wacluster.domain.ha import lease_ttl

pytestmark = pytest.mark.unit


def test_an_unconfirmed_lease_is_not_valid():
    assert not ShardLease(0, 1, ttl=2).valid(now=0)


def test_the_lease_runs_from_the_send_time_of_the_renewal():
    lease = ShardLease(0, 1, ttl=2)
    lease.confirmed(sent_at=100.0)
    assert lease.valid(101.8)
    assert not lease.valid(100 + 2 * (1 - MARGIN))


def test_the_coreapp_stops_before_the_database_lease_ends():
    """The database sets lease_until = now() + ttl at or after the send time; the master promotes
    only after lease_until. The coreapp's own deadline always comes first."""
    ttl = lease_ttl(heartbeat_interval=1, unhealthy_interval=3)
    lease = ShardLease(0, 1, ttl=ttl)
    sent_at, db_evaluated_at = 50.0, 50.03
    lease.confirmed(sent_at)
    database_lease_until = db_evaluated_at + ttl
    assert lease.deadline < database_lease_until


def test_fence_timeout_is_shorter_than_unhealthy_interval_minus_one_heartbeat_plus_renewal_slack():
    heartbeat, unhealthy = 5.0, 30.0
    lease = ShardLease(0, 1, ttl=lease_ttl(heartbeat, unhealthy))
    lease.confirmed(0.0)
    assert lease.deadline < unhealthy - heartbeat
    assert lease.renew_every * 3 == lease.ttl  # two renewals may fail before it runs out


def test_a_resumed_coreapp_finds_its_lease_expired():
    lease = ShardLease(0, 1, ttl=1.0)
    lease.confirmed(10.0)
    assert not lease.valid(10.0 + 30.0)  # SIGSTOP for 30 s, then SIGCONT
