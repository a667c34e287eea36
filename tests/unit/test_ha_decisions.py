"""The primary master's decisions, one rule per test."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from wacluster.domain.ha import CoreappState, ShardState, World, decide, lease_ttl
from wacluster.domain.maintenance import SWITCHOVER_WINDOW, parse_switchover, switchover_request

pytestmark = pytest.mark.unit


def coreapp(name, answer=0.5, db_age=1.0, stopping=False):
    return CoreappState(name, db_age, stopping, answer)


def world(shards, coreapps, count=None, masters=2, registered=True):
    return World(shards=shards, coreapps={c.name: c for c in coreapps},
                 shard_count=count if count is not None else max(1, len(shards)),
                 masters_alive=masters, registered=registered, heartbeat_interval=1, unhealthy_interval=3,
                 db_unhealthy_after=10)


def shard(k, owner, epoch=1, expired=False, revoked=False):
    return ShardState(k, owner, epoch, expired, revoked)


def kinds(decision):
    return [(a.kind, a.shard, a.coreapp) for a in decision.actions]


def test_nothing_happens_before_registration():
    d = decide(world([], [coreapp("c1")], count=1, registered=False))
    assert d.actions == [] and "not registered" in d.sentence


def test_the_shard_map_is_created_first():
    d = decide(world([], [coreapp("c1")], count=2))
    assert kinds(d) == [("ensure_shards", None, None)]


def test_unassigned_shard_gets_a_healthy_standby():
    d = decide(world([shard(0, None, 0)], [coreapp("c1"), coreapp("c2")]))
    assert kinds(d) == [("promote", 0, "c1")]
    assert "promoting c1 for shard 0" in d.sentence


def test_healthy_owner_is_left_alone():
    d = decide(world([shard(0, "c1")], [coreapp("c1"), coreapp("c2")]))
    assert d.actions == [] and d.sentence.startswith("no action")


def test_standby_is_promoted_when_primary_stops_answering():
    w = world([shard(0, "c1")], [coreapp("c1", answer=3.5), coreapp("c2")])
    d = decide(w)
    assert kinds(d) == [("revoke", 0, "c1")] and "answered no master heartbeat" in d.sentence
    d = decide(world([shard(0, "c1", revoked=True, expired=True)], [coreapp("c1", answer=4.5), coreapp("c2")]))
    assert kinds(d) == [("promote", 0, "c2")]


def test_revoked_owner_is_waited_for_until_its_lease_expires():
    d = decide(world([shard(0, "c1", revoked=True)], [coreapp("c1", answer=3.5), coreapp("c2")]))
    assert d.actions == [] and "waiting for c1's lease" in d.sentence


def test_with_one_master_only_the_database_rule_applies():
    silent = [coreapp("c1", answer=100), coreapp("c2")]
    assert decide(world([shard(0, "c1")], silent, masters=1)).actions == []
    stale_db = [coreapp("c1", answer=100, db_age=11), coreapp("c2")]
    assert kinds(decide(world([shard(0, "c1")], stale_db, masters=1))) == [("revoke", 0, "c1")]


def test_stopping_owner_is_replaced_at_once_after_its_release():
    d = decide(world([shard(0, "c1", revoked=True, expired=True)], [coreapp("c1", stopping=True), coreapp("c2")]))
    assert kinds(d) == [("promote", 0, "c2")] and "planned handoff" in d.sentence


def test_owner_with_an_expired_lease_is_replaced():
    d = decide(world([shard(0, "c1", expired=True)], [coreapp("c1"), coreapp("c2")]))
    assert kinds(d) == [("promote", 0, "c2")] and "fenced itself" in d.sentence


def test_a_standby_must_be_answering_heartbeats():
    d = decide(world([shard(0, None, 0)], [coreapp("c1", answer=None), coreapp("c2", answer=5)]))
    assert d.actions == [] and "no healthy standby" in d.sentence


def test_with_no_standby_left_the_shard_stays_unassigned_and_says_so():
    d = decide(world([shard(0, "c1", expired=True), shard(1, "c2")], [coreapp("c2")]))
    assert d.actions == [] and "shard 0 stays unassigned" in d.sentence


def test_two_shards_get_two_distinct_coreapps():
    d = decide(world([shard(0, None, 0), shard(1, None, 0)], [coreapp("c1"), coreapp("c2"), coreapp("c3")]))
    assert kinds(d) == [("promote", 0, "c1"), ("promote", 1, "c2")]


def test_owner_of_one_shard_is_never_promoted_for_another():
    d = decide(world([shard(0, "c1"), shard(1, "c2", expired=True)], [coreapp("c1"), coreapp("c2"), coreapp("c3")]))
    assert kinds(d) == [("promote", 1, "c3")]


def test_changing_the_shard_count_first_stops_the_owners_then_resizes():
    d = decide(world([shard(0, "c1")], [coreapp("c1"), coreapp("c2")], count=2))
    assert kinds(d) == [("revoke", 0, "c1")]
    d = decide(world([shard(0, "c1", expired=True, revoked=True)], [coreapp("c1"), coreapp("c2")], count=2))
    assert kinds(d) == [("resize", None, None)]


def test_lease_ttl_is_the_unhealthy_interval_minus_one_heartbeat():
    assert lease_ttl(5, 30) == 25
    assert lease_ttl(1, 2) == 1


def test_a_coreapp_whose_pod_is_going_is_replaced_without_waiting_for_heartbeats():
    going = CoreappState("c1", 1.0, False, 0.2, pod_gone=True)
    d = decide(world([shard(0, "c1")], [going, coreapp("c2")]))
    assert kinds(d) == [("revoke", 0, "c1")] and "its pod is terminating or deleted" in d.sentence


# --- maintenance: fencing and switchover ----------------------------------------------------------

T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)


def moved_shard(k, owner, since, epoch=2):
    return ShardState(k, owner, epoch, False, False, since=since)


def with_maintenance(w, fenced=(), switchover=None, now=T0 + dt.timedelta(seconds=1)):
    return dataclasses.replace(w, fenced=frozenset(fenced),
                               switchover=parse_switchover(switchover) if switchover else None, now=now)


def test_a_fenced_coreapp_is_never_promoted():
    w = with_maintenance(world([shard(0, None, 0)], [coreapp("c1"), coreapp("c2")]), fenced=["c1"])
    assert kinds(decide(w)) == [("promote", 0, "c2")]


def test_with_only_fenced_standbys_the_shard_stays_unassigned():
    w = with_maintenance(world([shard(0, None, 0)], [coreapp("c1")]), fenced=["c1"])
    d = decide(w)
    assert d.actions == [] and "no healthy standby" in d.sentence


def test_a_fenced_owner_is_asked_to_hand_its_shard_off_not_revoked():
    w = with_maintenance(world([shard(0, "c1")], [coreapp("c1"), coreapp("c2")]), fenced=["c1"])
    d = decide(w)
    assert kinds(d) == [("handoff", 0, "c1")] and "fenced for maintenance" in d.sentence


def test_a_fenced_owner_without_a_standby_keeps_serving_and_says_so():
    w = with_maintenance(world([shard(0, "c1")], [coreapp("c1")]), fenced=["c1"])
    d = decide(w)
    assert d.actions == [] and "c1 is fenced but keeps shard 0" in d.sentence


def test_switchover_asks_the_owner_to_hand_off_and_prefers_the_chosen_successor():
    request = switchover_request(0, "c3", T0)
    w = with_maintenance(world([moved_shard(0, "c1", T0 - dt.timedelta(minutes=5))],
                               [coreapp("c1"), coreapp("c2"), coreapp("c3")]), switchover=request)
    d = decide(w)
    assert kinds(d) == [("handoff", 0, "c1")] and d.switchover[0] == "InProgress"
    released = with_maintenance(world([ShardState(0, "c1", 2, True, True, since=T0 - dt.timedelta(minutes=5))],
                                      [coreapp("c1"), coreapp("c2"), coreapp("c3")]), switchover=request)
    assert kinds(decide(released)) == [("promote", 0, "c3")]


def test_switchover_without_a_target_completes_once_the_shard_moved_after_the_request():
    request = switchover_request(0, None, T0)
    before = with_maintenance(world([moved_shard(0, "c1", T0 - dt.timedelta(seconds=1))], [coreapp("c1"), coreapp("c2")]),
                              switchover=request)
    assert kinds(decide(before)) == [("handoff", 0, "c1")]
    after = with_maintenance(world([moved_shard(0, "c2", T0 + dt.timedelta(seconds=1), epoch=3)],
                                   [coreapp("c1"), coreapp("c2")]), switchover=request)
    d = decide(after)
    assert d.actions == [] and d.switchover == ("Completed", "shard 0 is served by c2 (epoch 3)")


def test_switchover_to_the_current_owner_is_already_complete():
    w = with_maintenance(world([moved_shard(0, "c1", T0 - dt.timedelta(hours=1))], [coreapp("c1"), coreapp("c2")]),
                         switchover=switchover_request(0, "c1", T0))
    d = decide(w)
    assert d.actions == [] and d.switchover[0] == "Completed"


@pytest.mark.parametrize("request_text, problem", [
    (switchover_request(5, None, T0), "there is no shard 5"),
    ('{"shard": "zero"}', "shard must be a shard number"),
    ('{"shard": 0, "requestedAt": "yesterday"}', "requestedAt must be an RFC 3339 time"),
    ("shard=0", "not JSON"),
])
def test_a_switchover_that_can_never_happen_is_refused_at_once_and_nothing_moves(request_text, problem):
    w = with_maintenance(world([moved_shard(0, "c1", T0 - dt.timedelta(hours=1))], [coreapp("c1"), coreapp("c2")]),
                         switchover=request_text)
    d = decide(w)
    assert d.actions == [] and d.switchover[0] == "Refused" and problem in d.switchover[1]


@pytest.mark.parametrize("to, fenced, problem", [
    ("c9", (), "c9 cannot take shard 0: no such coreapp is running"),
    ("c2", ("c2",), "c2 cannot take shard 0: it is fenced"),
    (None, ("c2",), "no healthy, unfenced standby"),
])
def test_a_switchover_that_cannot_happen_yet_waits_then_is_refused_after_its_window(to, fenced, problem):
    def judged(now):
        return decide(with_maintenance(world([moved_shard(0, "c1", T0 - dt.timedelta(hours=1))],
                                             [coreapp("c1"), coreapp("c2")]),
                                       fenced=fenced, switchover=switchover_request(0, to, T0), now=now))
    waiting = judged(T0 + dt.timedelta(seconds=5))
    assert waiting.actions == [] and waiting.switchover == ("Waiting", waiting.switchover[1])
    assert problem in waiting.switchover[1]
    late = judged(T0 + dt.timedelta(seconds=SWITCHOVER_WINDOW + 1))
    assert late.actions == [] and late.switchover[0] == "Refused"
    assert "not done within 120s of its request" in late.switchover[1] and problem in late.switchover[1]


def test_a_waiting_switchover_goes_ahead_once_its_successor_can_take_the_shard():
    request = switchover_request(0, "c3", T0)
    before = with_maintenance(world([moved_shard(0, "c1", T0 - dt.timedelta(hours=1))],
                                    [coreapp("c1"), coreapp("c2")]), switchover=request)
    assert decide(before).switchover[0] == "Waiting"
    after = with_maintenance(world([moved_shard(0, "c1", T0 - dt.timedelta(hours=1))],
                                   [coreapp("c1"), coreapp("c2"), coreapp("c3")]), switchover=request)
    assert kinds(decide(after)) == [("handoff", 0, "c1")]


def test_switchover_to_a_coreapp_serving_another_shard_waits():
    w = with_maintenance(world([moved_shard(0, "c1", T0), moved_shard(1, "c2", T0)],
                               [coreapp("c1"), coreapp("c2"), coreapp("c3")]),
                         switchover=switchover_request(0, "c2", T0))
    d = decide(w)
    assert d.actions == [] and d.switchover[0] == "Waiting" and "serves another shard" in d.switchover[1]
