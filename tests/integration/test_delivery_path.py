"""The delivery path under faults, as real processes: a message the API accepted (201) is sent
exactly once, one the API refused (503) is never sent, whatever the gateway connection, the
hand-off between webapp and coreapp or the shard map does meanwhile. Faults come from the
sandbox (`POST /faults`: a reset connection, a lost frame, a slow ack), from posting to a
coreapp's control port as a webapp would, and from a proxy that loses the coreapp's answers."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import urllib.error
import urllib.request

import psycopg
import pytest
from aiohttp import ClientSession, ClientTimeout, web

from wacluster.api.interprocess import CHANNEL, NotifyKind
from wacluster.domain.sharding import route_hash
from runtime_cluster import connected, start, webapp
from wacluster_testenv.eventually import eventually
from wacluster_testenv.processes import free_port

pytestmark = pytest.mark.integration


def delivered_ids(cluster) -> set[str]:
    return {d["id"] for d in cluster.gateway("/inspect/deliveries")["deliveries"]}


def queue_rows(cluster, rows: list[tuple[str, str, int]]) -> None:
    """Store queued messages (id, recipient, shard) as a webapp does before handing them over."""
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO messages (id, recipient, route_hash, shard, body) VALUES (%s, %s, %s, %s, %s)",
                [(i, to, route_hash(to), shard, json.dumps({"type": "text", "text": {"body": i}}))
                 for i, to, shard in rows])


def control_address(cluster, coreapp: str) -> str:
    return cluster.query("SELECT address FROM nodes WHERE name = %s", (coreapp,))[0][0]


def hand_off(cluster, address: str, body: bytes | dict) -> tuple[int, dict, dict]:
    """POST /messages to a coreapp's control port, as a webapp hands a batch to a shard's owner."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{address}/messages", data=data, method="POST",
                                     headers={"Content-Type": "application/json", **cluster.control_headers()})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            status, raw, headers = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        status, raw, headers = err.code, err.read(), dict(err.headers)
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = {"raw": raw.decode(errors="replace")}
    return status, parsed, headers


def batch_of(*rows: tuple[str, str]) -> list[dict]:
    """A hand-off batch in the shape webapps post (id, recipient, body)."""
    return [{"id": i, "to": to, "body": {"type": "text", "text": {"body": i}}} for i, to in rows]


def readdress(cluster, coreapp: str, address: str) -> None:
    """Make masters and webapps reach `coreapp` at `address` (they read it from its node row)."""
    cluster.query("UPDATE nodes SET address = %s WHERE name = %s RETURNING name", (address, coreapp))
    cluster.query("SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps({"kind": NotifyKind.SHARD_MAP.value})))


def recipient_in_shard(shard: int, shards: int, start: int = 0) -> str:
    n = start
    while route_hash(f"+1555900{n:04d}") % shards != shard:
        n += 1
    return f"+1555900{n:04d}"


# --- 2. the sender never dies silently ----------------------------------------------------------


def test_delivery_resumes_after_the_gateway_connection_is_reset_mid_batch(cluster):
    start(cluster)
    api = webapp(cluster)
    eventually(lambda: connected(cluster), 30, what="shard 0 connected")
    accepted: list[str] = []
    sending = threading.Event()
    sending.set()

    def sender():
        i = 0
        while sending.is_set():
            message_id = api.send_until_accepted(f"+1555800{i:04d}", "steady")
            assert message_id, "a message was refused for 30 s"
            accepted.append(message_id)
            i += 1

    thread = threading.Thread(target=sender)
    thread.start()
    try:
        eventually(lambda: len(accepted) >= 20, 30, what="messages accepted before the fault")
        # Ten batches in a row, each half delivered and then the connection reset under the sender.
        cluster.gateway_faults(reset_on_send=10)
        eventually(lambda: len(cluster.gateway_faults()["resets"]) == 10, 120, what="ten connection resets")
        after = len(accepted)
        eventually(lambda: len(accepted) >= after + 20, 60, what="messages accepted after the resets")
    finally:
        sending.clear()
        thread.join()
    eventually(lambda: set(accepted) <= delivered_ids(cluster), 60, what="every accepted message delivered",
               details=lambda: "\n".join(r.output()[-3000:] for n, r in cluster.roles.items() if n.startswith("wacore")))
    report = cluster.gateway("/inspect/deliveries")
    assert report["duplicates"] == [] and report["conflicts"] == []


# --- 3. the backlog is drained, whatever its size and whatever got lost ------------------------


def test_a_backlog_larger_than_a_page_is_fully_delivered(cluster):
    start(cluster, masters=1, coreapps=0)
    count = 12_000  # more than a page of the backlog scan, and than the takeover ever read at once
    queue_rows(cluster, [(f"backlog-{i:05d}", f"+1555{i:07d}", 0) for i in range(count)])
    cluster.start_coreapp("wacore1")
    eventually(lambda: cluster.query("SELECT count(*) FROM messages WHERE status = 'delivered'")[0][0] == count,
               180, what=f"all {count} queued messages delivered",
               details=lambda: str(cluster.query("SELECT status, count(*) FROM messages GROUP BY status")))
    report = cluster.gateway()
    assert report["delivered"] == count and report["duplicates"] == 0


def test_a_message_whose_ack_never_came_is_delivered(cluster):
    start(cluster)
    api = webapp(cluster)
    eventually(lambda: connected(cluster), 30, what="shard 0 connected")
    cluster.gateway_faults(swallow_sends=1)  # the next send frame is lost: no delivery, no ack
    lost = api.send_until_accepted("+15558100000", "its first send is lost")
    assert lost
    eventually(lambda: len(cluster.gateway_faults()["swallowed"]) == 1, 30, what="the send frame swallowed")
    later = [api.send_until_accepted(f"+1555810{i:04d}", "after") for i in range(1, 4)]
    assert all(later)
    # The owner's ack wait runs out (30 s by default); its backlog scan then sends the message again.
    eventually(lambda: {lost, *later} <= delivered_ids(cluster), 120, what="the lost message delivered after all")
    assert cluster.gateway()["duplicates"] == 0


# --- 4. a coreapp sends only what it claimed: queued, its shard, its epoch ---------------------


def test_a_batch_handed_again_to_the_next_owner_is_not_sent_twice(cluster):
    """A webapp whose hand-off reply was lost retries the same batch; by then the shard moved."""
    start(cluster)
    owner = eventually(lambda: connected(cluster), 30, what="shard 0 connected")[0][0]
    queue_rows(cluster, [("handed-twice", "+15558200000", 0)])
    batch = {"shard": 0, "messages": batch_of(("handed-twice", "+15558200000"))}
    status, body, _ = hand_off(cluster, control_address(cluster, owner), batch)
    assert status == 202, body
    eventually(lambda: "handed-twice" in delivered_ids(cluster), 30, what="the batch delivered by its owner")
    eventually(lambda: cluster.query("SELECT status FROM messages WHERE id = 'handed-twice'")[0][0] == "delivered",
               30, what="the delivery recorded")
    cluster.roles[owner].signal(signal.SIGKILL)
    successor = eventually(lambda: (o := cluster.shard_owners()[0][0]) not in (None, owner) and o, 60,
                           what="shard 0 connected by the standby")
    status, body, _ = hand_off(cluster, control_address(cluster, successor), batch)  # the webapp's retry
    assert status == 202, body
    # A later message through the same owner: once it is delivered, the retry was handled too.
    queue_rows(cluster, [("after-retry", "+15558200001", 0)])
    assert hand_off(cluster, control_address(cluster, successor),
                    {"shard": 0, "messages": batch_of(("after-retry", "+15558200001"))})[0] == 202
    eventually(lambda: "after-retry" in delivered_ids(cluster), 30, what="the later message delivered")
    report = cluster.gateway("/inspect/deliveries")
    assert [d["id"] for d in report["duplicates"]] == [], "the retried batch was sent again"


def test_a_row_moved_to_another_shard_is_sent_only_by_that_shards_owner(cluster):
    """Resharding moved a queued row to shard 1 after a webapp, routing by its cached shard count,
    stored it for shard 0; the webapp still hands it to shard 0's owner."""
    cluster.configure(shards=2)
    start(cluster, coreapps=3)
    owners = eventually(lambda: connected(cluster, shards=2), 60, what="2 shards connected")
    to = recipient_in_shard(1, 2)
    queue_rows(cluster, [("moved-to-shard-1", to, 1)])
    status, body, _ = hand_off(cluster, control_address(cluster, owners[0][0]),
                               {"shard": 0, "messages": batch_of(("moved-to-shard-1", to))})
    assert status == 202, body  # acknowledged: the row is durable and has an owner
    delivery = eventually(lambda: next((d for d in cluster.gateway("/inspect/deliveries")["deliveries"]
                                        if d["id"] == "moved-to-shard-1"), None), 60,
                          what="the moved message delivered")
    assert (delivery["shard"], delivery["node"]) == (1, owners[1][0]), delivery
    assert cluster.gateway()["duplicates"] == 0


# --- 5. a 503 means never sent; a 201 means sent exactly once ---------------------------------


class ReplyLosingProxy:
    """Stands in for a coreapp's control port: forwards every request to it, and passes the
    answers to heartbeats back, but loses the answers to POST /messages (the webapp's attempt
    times out after the coreapp did its part)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.handed: list[int] = []  # the coreapp's status for each hand-off whose answer was lost
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._closed: asyncio.Event | None = None

    async def _start(self) -> None:
        self._closed = asyncio.Event()
        self._session = ClientSession(timeout=ClientTimeout(total=10))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        headers = {"Content-Type": "application/json", "Authorization": request.headers.get("Authorization", "")}
        async with self._session.request(request.method, f"http://{self.target}{request.path}",
                                         data=await request.read(), headers=headers) as resp:
            body, status = await resp.read(), resp.status
        if request.method == "POST" and request.path == "/messages":
            self.handed.append(status)
            await self._closed.wait()  # the answer never arrives
        return web.Response(body=body, status=status, content_type="application/json")

    async def _stop(self) -> None:
        self._closed.set()
        await self._runner.cleanup()
        await self._session.close()

    def __enter__(self) -> "ReplyLosingProxy":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()


def test_a_503_means_never_sent_even_when_the_owner_had_taken_the_message(cluster):
    """The webapp's every attempt times out after the owner took the message (the answers are
    lost), so it withdraws the message; the owner's send is slow to be acknowledged, so the
    withdrawal comes before the delivery is recorded. Withdrawal and sending must agree."""
    start(cluster, coreapps=1)
    api = webapp(cluster)
    owner = eventually(lambda: connected(cluster), 30, what="shard 0 connected")[0][0]
    assert api.send_until_accepted("+15558300000", "before the proxy")
    cluster.gateway_faults(ack_delay=15.0)  # longer than the webapp's 10 s request deadline
    replies = {}
    address = control_address(cluster, owner)
    with ReplyLosingProxy(address) as proxy:
        readdress(cluster, owner, proxy.address)

        def one_through_the_proxy():
            to = f"+155583{len(replies):05d}"
            replies[to] = api.send_text(to, "answer lost")
            return proxy.handed

        eventually(one_through_the_proxy, 60, interval=0.2, what="a message handed over through the proxy")
        to = f"+155583{len(replies):05d}"
        replies[to] = api.send_text(to, "answer lost")
        cluster.gateway_faults(ack_delay=0)
        readdress(cluster, owner, address)
    assert set(r.status for r in replies.values()) <= {201, 503}, {to: r.body for to, r in replies.items()}
    assert len(proxy.handed) >= 2
    accepted = {to for to, r in replies.items() if r.status == 201}
    refused = {to for to, r in replies.items() if r.status == 503}

    def sent_to() -> list[str]:
        return [d["to"] for d in cluster.gateway("/inspect/deliveries")["deliveries"]]
    eventually(lambda: accepted <= set(sent_to()), 60, what="every accepted message delivered")
    eventually(lambda: cluster.query("SELECT count(*) FROM messages WHERE status NOT IN ('delivered', 'cancelled')")
               [0][0] == 0, 60, what="every message delivered or withdrawn")
    assert [to for to in sent_to() if to in refused] == [], "a message answered 503 was sent"
    assert cluster.gateway()["duplicates"] == 0


# --- 6. the control API: validated, backed by the database, bounded ----------------------------


def test_a_malformed_hand_off_gets_a_400_in_the_api_error_shape(cluster):
    start(cluster, masters=1, coreapps=1, register=False)
    address = eventually(lambda: (r := cluster.query("SELECT address FROM nodes WHERE name = 'wacore1'")) and r[0][0],
                         30, what="wacore1 registered")
    for body, why in [(b"{not json", "JSON"), (b"[1, 2]", "object"), ({"messages": []}, "shard"),
                      ({"shard": "zero", "messages": []}, "shard"), ({"shard": 0, "messages": "m1"}, "messages"),
                      ({"shard": 0, "messages": [{"to": "+15550001"}]}, "id"), ({"shard": -1, "messages": []}, "shard")]:
        status, reply, _ = hand_off(cluster, address, body)
        assert status == 400, (body, status, reply)
        (error,) = reply["errors"]
        assert error["code"] == 1009 and why in error["details"], (body, reply)


def test_a_handed_message_without_a_stored_row_is_not_sent(cluster):
    start(cluster, coreapps=1)
    owner = eventually(lambda: connected(cluster), 30, what="shard 0 connected")[0][0]
    address = control_address(cluster, owner)
    status, body, _ = hand_off(cluster, address, {"shard": 0, "messages": batch_of(("never-stored", "+15558400000"))})
    assert status == 202, body
    queue_rows(cluster, [("stored", "+15558400001", 0)])
    assert hand_off(cluster, address, {"shard": 0, "messages": batch_of(("stored", "+15558400001"))})[0] == 202
    eventually(lambda: "stored" in delivered_ids(cluster), 30, what="the stored message delivered")
    assert "never-stored" not in delivered_ids(cluster)


def test_an_owner_with_a_full_outbox_answers_503_and_leaves_the_rest_queued(cluster):
    start(cluster, coreapps=1)
    owner = eventually(lambda: connected(cluster), 30, what="shard 0 connected")[0][0]
    address = control_address(cluster, owner)
    cluster.gateway_faults(swallow_sends=1_000_000)  # nothing is ever acknowledged: the outbox only fills
    ids = [f"fill-{i:05d}" for i in range(12_000)]
    queue_rows(cluster, [(i, "+15558500000", 0) for i in ids])
    answers = []
    for start_at in range(0, len(ids), 1000):
        chunk = ids[start_at:start_at + 1000]
        status, body, headers = hand_off(cluster, address,
                                         {"shard": 0, "messages": batch_of(*((i, "+15558500000") for i in chunk))})
        answers.append(status)
        if status == 503:
            assert body["errors"][0]["code"] == 1011 and headers.get("Retry-After"), body
            break
    assert answers[-1] == 503, f"every hand-off was taken: {answers}"
    assert set(answers[:-1]) <= {202}
    queued = cluster.query("SELECT count(*) FROM messages WHERE status = 'queued'")[0][0]
    assert queued > 0, "the owner took more than its outbox holds"
