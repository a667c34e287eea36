"""The Fenced and Switchover conditions: what the operator tells from the maintenance annotations
and the primary master's answer."""

from __future__ import annotations

import pytest

from wacluster.domain.cluster_status import Observation, RoleCounts, compute_status
from wacluster.domain.upgrade import plan_rollout

pytestmark = pytest.mark.unit

REQUEST = '{"requestedAt": "2026-11-24T12:00:00.000000Z", "shard": 0, "to": "c2"}'


def conditions(**maintenance):
    obs = Observation(generation=3, rollout=plan_rollout("2.1", "2.1", "Succeeded"),
                      roles={r: RoleCounts(2, 2, 2) for r in ("master", "coreapp")}, database_ready=True,
                      primary_master="m-0", shards=[{"shard": 0, "coreapp": "c1", "epoch": 4}], **maintenance)
    return {c["type"]: c for c in compute_status(obs)["conditions"]}


def test_nothing_fenced_and_no_switchover_say_so():
    c = conditions()
    assert (c["Fenced"]["status"], c["Fenced"]["reason"]) == ("False", "NoneFenced")
    assert (c["Switchover"]["status"], c["Switchover"]["reason"]) == ("False", "NoneRequested")


def test_fenced_coreapps_are_listed_and_a_fenced_owner_still_serving_is_named():
    c = conditions(fenced=frozenset({"c3", "c1"}))
    assert c["Fenced"]["status"] == "True" and c["Fenced"]["reason"] == "FencedOwnerServing"
    assert "never promoted): c1, c3" in c["Fenced"]["message"]
    assert "c1 still serves shard 0" in c["Fenced"]["message"]
    assert conditions(fenced=frozenset({"c3"}))["Fenced"]["reason"] == "CoreappsFenced"


@pytest.mark.parametrize("answer, status, reason", [
    (None, "Unknown", "Requested"),
    ({"request": "an older request", "state": "Completed", "message": "x"}, "Unknown", "Requested"),
    ({"request": REQUEST, "state": "InProgress", "message": "moving shard 0 from c1 to c2"}, "Unknown", "InProgress"),
    ({"request": REQUEST, "state": "Completed", "message": "shard 0 is served by c2 (epoch 5)"}, "True", "Completed"),
    ({"request": REQUEST, "state": "Waiting", "message": "c2 cannot take shard 0: it is fenced"}, "Unknown", "Waiting"),
    ({"request": REQUEST, "state": "Refused", "message": "not done within 120s of its request"}, "False", "Refused"),
])
def test_the_switchover_condition_follows_the_masters_answer_to_this_request(answer, status, reason):
    c = conditions(switchover_request=REQUEST, switchover_answer=answer)["Switchover"]
    assert (c["status"], c["reason"]) == (status, reason)
    if answer and answer["request"] == REQUEST:
        assert answer["message"] in c["message"]
