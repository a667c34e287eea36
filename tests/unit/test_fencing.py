"""The coreapp's shard lease on the real clock: with real (short) ttls, its validity ends by
itself, never later than the renewal's send time plus the ttl, whatever the reply's delay.

Every test samples `valid()` at real `time.monotonic()` instants and waits with `eventually` for
the validity to end. A sample taken at or after `sent + ttl` must never say valid; nothing here
asserts how soon anything happens (a loaded machine may be slow to look)."""

from __future__ import annotations

import time

import pytest

from wacluster.domain.coreapp_state import CoreappState as S
from wacluster.domain.fencing import ShardLease
from wacluster.runtime.coreapp.control import Refusal, accept
from wacluster.runtime.coreapp.outbox import Outbox
from wacluster.runtime.coreapp.ownership import Session
from wacluster.runtime.coreapp.role import Coreapp
from wacluster.runtime.node import NodeIdentity
from wacluster_testenv.eventually import eventually, eventually_async

pytestmark = pytest.mark.unit

TTL = 0.3


def samples_until(valid, until: float) -> list[tuple[float, bool]]:
    """(instant, valid at that instant) on the real clock, from now until `until` has passed."""
    seen: list[tuple[float, bool]] = []

    def past() -> bool:
        now = time.monotonic()
        seen.append((now, valid(now)))
        return now >= until

    eventually(past, timeout=until - time.monotonic() + 30, interval=0.005, what="the sampling window")
    return seen


def valid_at_or_after(seen: list[tuple[float, bool]], instant: float) -> list[float]:
    return [now for now, valid in seen if valid and now >= instant]


def let_pass(seconds: float) -> float:
    """Deliberately let real time pass (a slow reply, a stopped process); returns the instant after."""
    start = time.monotonic()
    return eventually(lambda: (now := time.monotonic()) >= start + seconds and now, timeout=seconds + 30,
                      interval=0.005, what=f"{seconds}s of real time")


def test_an_unconfirmed_lease_is_never_valid():
    lease = ShardLease(0, 1, ttl=TTL)
    seen = samples_until(lease.valid, time.monotonic() + 2 * TTL)
    assert [now for now, valid in seen if valid] == []


def test_a_confirmed_lease_ends_by_itself_before_its_send_time_plus_the_ttl():
    lease = ShardLease(0, 1, ttl=TTL)
    sent = time.monotonic()
    lease.confirmed(sent)
    seen = samples_until(lease.valid, sent + 2 * TTL)
    assert valid_at_or_after(seen, sent + TTL) == []
    assert not lease.valid(time.monotonic())


def test_a_late_reply_counts_from_the_renewals_send_time():
    lease = ShardLease(0, 1, ttl=TTL)
    sent = time.monotonic()
    let_pass(TTL / 2)  # the database answers half a ttl later
    lease.confirmed(sent)
    seen = samples_until(lease.valid, sent + 2 * TTL)
    assert valid_at_or_after(seen, sent + TTL) == []  # counted from the reply, it would last until ~1.5 ttl


def test_a_reply_arriving_after_the_ttl_confers_nothing():
    lease = ShardLease(0, 1, ttl=TTL)
    sent = time.monotonic()
    let_pass(TTL)  # the reply comes when the database's lease may already have run out
    lease.confirmed(sent)
    seen = samples_until(lease.valid, time.monotonic() + TTL)
    assert [now for now, valid in seen if valid] == []


def test_a_renewal_with_a_shorter_ttl_shortens_the_lease():
    """Interval settings apply live: the next renewal carries the new ttl, and the database's
    lease_until shrinks with it, so the coreapp's own deadline must shrink too."""
    lease = ShardLease(0, 1, ttl=60.0)
    lease.confirmed(time.monotonic())
    lease.ttl = TTL
    sent = time.monotonic()
    lease.confirmed(sent)
    seen = samples_until(lease.valid, sent + 2 * TTL)
    assert valid_at_or_after(seen, sent + TTL) == []


def test_a_renewal_with_a_shorter_ttl_that_got_no_answer_shortens_the_lease_too():
    """The renewal may have committed the shorter lease in the database, or not: the coreapp
    must stop by the shorter of the two (docs/promotion.md, known gap 2)."""
    lease = ShardLease(0, 1, ttl=60.0)
    lease.confirmed(time.monotonic())
    lease.ttl = TTL
    sent = time.monotonic()
    lease.in_doubt(sent)  # the renewal raised: committed or not, nobody knows
    seen = samples_until(lease.valid, sent + 2 * TTL)
    assert valid_at_or_after(seen, sent + TTL) == []


def test_an_unanswered_renewal_never_lengthens_the_lease():
    lease = ShardLease(0, 1, ttl=TTL)
    confirmed_at = time.monotonic()
    lease.confirmed(confirmed_at)
    deadline = lease.deadline
    lease.in_doubt(confirmed_at + TTL / 3)
    assert lease.deadline == deadline


def test_a_lease_that_is_no_longer_renewed_expires():
    """A SIGSTOPped coreapp renews nothing: when it resumes, its lease has expired."""
    lease = ShardLease(0, 1, ttl=TTL)
    for _ in range(3):  # renewing every ttl / 3 as the coreapp does
        lease.confirmed(time.monotonic())
        let_pass(lease.renew_every)
    resumed = let_pass(2 * TTL)  # stopped: no renewal meanwhile
    assert not lease.valid(resumed)
    assert lease.remaining(resumed) == 0.0


async def test_a_coreapp_whose_lease_ran_out_refuses_messages_for_its_shard():
    coreapp = Coreapp(NodeIdentity("wacore1", "n1", "test", "127.0.0.1:0"), pool=None, gateway_url="http://unused")
    lease = ShardLease(0, 1, ttl=TTL)
    sent = time.monotonic()
    lease.confirmed(sent)
    for state in (S.STANDBY, S.TAKING_OVER, S.SERVING):
        coreapp.lifecycle.move(state, "test")
    coreapp.session = Session(0, 1, lease, link=None, outbox=Outbox(1_000_000))
    answers: list[tuple[float, bool]] = []

    async def refused() -> bool:
        asked_at = time.monotonic()  # the coreapp reads the clock after this
        # With no database the claim itself fails (a 503), but only after the owner check passed.
        outcome = await accept(coreapp, 0, [f"m{len(answers)}"])
        taken = not (isinstance(outcome, Refusal) and outcome.kind == "not_owner")
        answers.append((asked_at, taken))
        return not taken

    await eventually_async(refused, timeout=30, interval=0.005, what="the coreapp refusing messages")
    assert [at for at, taken in answers if taken and at >= sent + TTL] == []
