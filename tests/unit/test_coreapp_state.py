"""The coreapp's state machine (domain/coreapp_state.py): one Enum, one table of allowed
transitions; everything else about the role's state is derived from it."""

from __future__ import annotations

import pytest

from wacluster.domain.coreapp_state import TRANSITIONS, CoreappState, IllegalTransition, Lifecycle

pytestmark = pytest.mark.unit
S = CoreappState


def walk(*states: CoreappState) -> Lifecycle:
    lifecycle = Lifecycle()
    for state in states:
        lifecycle.move(state, "test")
    return lifecycle


def test_a_coreapp_starts_starting_and_the_table_covers_every_state():
    assert Lifecycle().state is S.STARTING
    assert set(TRANSITIONS) == set(S)
    assert all(targets <= set(S) for targets in TRANSITIONS.values())


def test_the_life_of_a_coreapp_that_serves_and_hands_off():
    lifecycle = walk(S.STANDBY, S.TAKING_OVER, S.SERVING, S.DRAINING, S.HANDING_OFF, S.STOPPED)
    assert [(a, b) for a, b, _ in lifecycle.history] == [
        (S.STARTING, S.STANDBY), (S.STANDBY, S.TAKING_OVER), (S.TAKING_OVER, S.SERVING),
        (S.SERVING, S.DRAINING), (S.DRAINING, S.HANDING_OFF), (S.HANDING_OFF, S.STOPPED)]


def test_a_fenced_coreapp_stands_by_and_may_take_a_shard_again():
    lifecycle = walk(S.STANDBY, S.TAKING_OVER, S.SERVING, S.STANDBY, S.TAKING_OVER, S.STANDBY, S.TAKING_OVER)
    assert lifecycle.move(S.SERVING, "reconnected") is S.TAKING_OVER
    assert lifecycle.state is S.SERVING


@pytest.mark.parametrize("start, target", [(a, b) for a in S for b in S if b not in TRANSITIONS[a]])
def test_every_transition_the_table_does_not_list_raises(start, target):
    lifecycle = Lifecycle(state=start)
    with pytest.raises(IllegalTransition, match=f"from {start.value} to {target.value}"):
        lifecycle.move(target, "test")
    assert lifecycle.state is start


def test_a_coreapp_serves_only_after_taking_over_and_stops_only_through_a_handoff_or_as_a_standby():
    assert {a for a in S if S.SERVING in TRANSITIONS[a]} == {S.TAKING_OVER}
    assert {a for a in S if S.STOPPED in TRANSITIONS[a]} == {S.STARTING, S.STANDBY, S.HANDING_OFF}
    assert TRANSITIONS[S.STOPPED] == frozenset()


def test_only_a_serving_coreapp_accepts_messages():
    assert {s for s in S if Lifecycle(state=s).accepts_messages} == {S.SERVING}


def test_a_draining_coreapp_still_sends_what_it_holds_but_a_handing_off_one_sends_nothing():
    assert {s for s in S if Lifecycle(state=s).sends} == {S.SERVING, S.DRAINING}
    assert {s for s in S if Lifecycle(state=s).holds_shard} == {S.SERVING, S.DRAINING}


def test_stopping_is_read_from_the_state():
    assert {s for s in S if Lifecycle(state=s).stopping} == {S.DRAINING, S.HANDING_OFF, S.STOPPED}
