"""The outbox: what a serving coreapp holds in hand, bounded, and what it lost track of."""

from __future__ import annotations

import asyncio

import pytest

from wacluster.runtime.coreapp.outbox import Claimed, Outbox, OutboxClosed

pytestmark = pytest.mark.unit


def claimed(*ids: str) -> list[Claimed]:
    return [Claimed(i, "+15550001", {"type": "text", "text": {"body": i}}) for i in ids]


def test_a_claim_reserves_room_first_and_a_batch_beyond_it_is_refused_whole():
    outbox = Outbox(capacity=3)
    assert outbox.reserve(2)
    outbox.put(claimed("a", "b"))
    outbox.unreserve(2)
    assert outbox.unsettled == 2 and outbox.free == 1
    assert not outbox.reserve(2)  # all or nothing: a webapp batch is refused, not split
    assert outbox.reserve(1)


def test_a_backlog_page_takes_what_room_there_is():
    outbox = Outbox(capacity=3)
    outbox.put(claimed("a"))
    assert outbox.reserve_up_to(10) == 2
    assert outbox.free == 0 and outbox.reserve_up_to(10) == 0


async def test_messages_stay_in_hand_until_settled_and_room_comes_back():
    outbox = Outbox(capacity=2)
    outbox.put(claimed("a", "b"))
    batch = await outbox.next_batch(10)
    assert [m.id for m in batch] == ["a", "b"] and outbox.free == 0  # sent, awaiting their ack
    waiting = asyncio.create_task(outbox.wait_room())
    outbox.settle(["a"])
    await waiting
    assert outbox.free == 1 and outbox.holds("b") and not outbox.holds("a")


async def test_lost_messages_leave_the_hand_and_wait_for_the_backlog_scan():
    outbox = Outbox(capacity=5)
    outbox.put(claimed("a", "b", "c"))
    await outbox.next_batch(2)
    outbox.lose(["a", "b"])
    assert outbox.unsettled == 1 and outbox.has_lost
    assert outbox.take_lost() == {"a", "b"} and not outbox.has_lost
    outbox.put(claimed("a"))  # taken in hand again by the scan
    assert outbox.holds("a")


def test_a_message_already_in_hand_is_not_taken_twice():
    outbox = Outbox(capacity=5)
    assert outbox.put(claimed("a")) == 1
    assert outbox.put(claimed("a", "b")) == 1
    assert outbox.unsettled == 2


async def test_closing_drops_everything_and_ends_every_wait():
    outbox = Outbox(capacity=1)
    outbox.put(claimed("a"))
    await outbox.next_batch(1)
    sender = asyncio.create_task(outbox.next_batch(1))
    scanner = asyncio.create_task(outbox.wait_room())
    drained = asyncio.create_task(outbox.settled())
    outbox.close()  # whether they are already waiting or not yet, each of the three ends
    with pytest.raises(OutboxClosed):
        await sender
    with pytest.raises(OutboxClosed):
        await scanner
    await drained
    assert outbox.unsettled == 0 and not outbox.reserve(1)
    outbox.lose(["a"])
    assert not outbox.has_lost  # a closed outbox's losses belong to the next session's scan
