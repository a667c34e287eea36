"""The harness's one polling helper: what it returns, when it gives up and what it says then."""

from __future__ import annotations

import asyncio

import pytest

from wacluster_testenv.eventually import NotReached, eventually, eventually_async

pytestmark = pytest.mark.harness


def test_the_first_truthy_value_of_the_check_is_returned():
    answers = iter([None, 0, "", {"owner": "wacore2"}, "later"])
    assert eventually(lambda: next(answers), timeout=5, interval=0.001) == {"owner": "wacore2"}


def test_a_condition_that_never_holds_fails_the_test_saying_what_was_awaited_and_the_last_value():
    with pytest.raises(AssertionError) as failure:
        eventually(lambda: None, timeout=0.05, interval=0.01, what="a new primary")
    assert isinstance(failure.value, NotReached)
    assert "a new primary not reached within 0.05s (last: None)" in str(failure.value)


def test_the_check_runs_once_more_after_the_deadline():
    calls = []
    assert eventually(lambda: calls.append("call") or len(calls) == 2, timeout=0, interval=1) is True
    assert calls == ["call", "call"]


def test_ignored_exceptions_count_as_not_yet():
    outcomes = iter([LookupError("not created yet"), LookupError("not created yet"), "created"])

    def check():
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert eventually(check, timeout=5, interval=0.001, ignore=(LookupError,)) == "created"


def test_an_exception_not_listed_as_ignored_ends_the_wait_at_once():
    calls = []

    def check():
        calls.append("call")
        raise ValueError("a bug in the check")

    with pytest.raises(ValueError):
        eventually(check, timeout=5, interval=0.001, ignore=(LookupError,))
    assert calls == ["call"]


def test_the_failure_shows_the_last_ignored_exception_and_the_details():
    def check():
        raise LookupError("deployment wa-master not found")

    with pytest.raises(NotReached) as failure:
        eventually(check, timeout=0.02, interval=0.01, what="the Deployment", ignore=(LookupError,),
                   details=lambda: "operator log tail: reconcile failed")
    assert "LookupError('deployment wa-master not found')" in str(failure.value)
    assert str(failure.value).endswith("\noperator log tail: reconcile failed")


async def test_the_async_variant_awaits_coroutine_checks_without_blocking_the_event_loop():
    done = asyncio.Event()

    async def other_task():
        await asyncio.sleep(0.05)
        done.set()

    async def check():
        return done.is_set() and "done"

    task = asyncio.create_task(other_task())
    # Were the waiting a time.sleep, the other task could never run and this would time out.
    assert await eventually_async(check, timeout=10, interval=0.01, what="the other task") == "done"
    await task


async def test_the_async_variant_gives_up_like_the_sync_one():
    with pytest.raises(NotReached) as failure:
        await eventually_async(lambda: False, timeout=0.02, interval=0.01, what="a leader")
    assert "a leader not reached within 0.02s (last: False)" in str(failure.value)
