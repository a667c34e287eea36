"""A burst larger than what a paced owner holds in hand is accepted at once and sent at the
gateway's pace: a full owner leaves the stored rows to its backlog scan (runtime/coreapp/outbox.py,
webapp/routing.py), which sends them in the order they were stored. Before, the webapp retried a
full owner until its 10 s deadline, then withdrew the message and answered 503."""

from __future__ import annotations

import threading

import pytest

from runtime_cluster import webapp
from test_cloud_delivery import LocalCloud, all_delivered, start_cloud_cluster, statuses
from wacluster_testenv.eventually import eventually

pytestmark = pytest.mark.integration

SENDERS, PER_SENDER = 10, 20  # 200 messages: 40 s of sending at 5 a second


@pytest.fixture
def cloud():
    with LocalCloud() as served:
        yield served


def test_a_burst_beyond_the_outbox_is_accepted_at_once_and_sent_in_order_at_the_pace(cluster, cloud):
    start_cloud_cluster(cluster, cloud, args=("--outbox-capacity", "5"), messages_per_second=5)
    api = webapp(cluster)
    answers: dict[int, list[tuple[int, str | None]]] = {s: [] for s in range(SENDERS)}

    def send(sender: int) -> None:
        for n in range(PER_SENDER):  # one recipient per sender, its messages in order
            reply = api.send_text(f"+1555800{sender:04d}", f"burst {sender} {n:03d}")
            answers[sender].append((reply.status, reply.body.get("messages", [{}])[0].get("id")))

    threads = [threading.Thread(target=send, args=(s,)) for s in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    replies = [answer for per in answers.values() for answer in per]
    assert [status for status, _ in replies] == [201] * SENDERS * PER_SENDER
    ids = [i for _, i in replies]
    # Accepted ahead of the gateway: when the last answer came, stored messages were still
    # waiting in the database (before, a 201 came only once its message was in the owner's hand,
    # so none could still be queued then).
    waiting = statuses(cluster, ids)
    assert sum(1 for status in waiting.values() if status == "queued") > 0, waiting
    eventually(lambda: all_delivered(cluster, ids), 120, what="the whole burst delivered",
               details=lambda: str(sorted(set(statuses(cluster, ids).values()))))
    assert cloud.api.counts() == {i: 1 for i in ids}
    for sender in range(SENDERS):
        sent = [s.body["text"]["body"] for s in cloud.api.sends if s.to == f"+1555800{sender:04d}"]
        assert sent == sorted(sent), f"recipient {sender} got its messages out of order: {sent}"
