"""Webhook delivery gives up: failed attempts back off exponentially with jitter between
`callback_backoff_delay_ms` and `max_callback_backoff_delay_ms`, an event still undelivered
`webhook_dead_after_seconds` after it was queued is dead (never retried, counted, kept for
replay), and a receiver that comes back gets every pending event once."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections import Counter

import aiohttp
import psycopg
import pytest
from aiohttp import web
from prometheus_client import REGISTRY
from psycopg_pool import AsyncConnectionPool

from wacluster.db import schema
from wacluster.db import settings as settings_db
from wacluster.db import webhooks as webhooks_db
from wacluster.domain.webhook_destinations import parse_networks
from wacluster.runtime import metrics
from wacluster.runtime.webapp.destinations import AllowedDestinationsResolver
from wacluster.runtime.webapp.webhooks import WebhookDispatcher
from wacluster_testenv.eventually import eventually
from wacluster_testenv.localcluster import LocalCluster

pytestmark = pytest.mark.integration


class FailingReceiver:
    """An HTTP receiver on loopback that answers 500 to every POST and counts them."""

    def __init__(self) -> None:
        self.posts = 0

    async def __aenter__(self) -> str:
        async def fail(request: web.Request) -> web.Response:
            await request.read()
            self.posts += 1
            return web.Response(status=500)
        app = web.Application()
        app.router.add_post("/hook", fail)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hook"

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()


@pytest.fixture
async def dispatcher(pg_dsn):
    """A webapp's dispatcher in this process, against a fresh database, allowed to reach loopback."""
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        await schema.migrate(conn)
    allowed = parse_networks("127.0.0.0/8")
    pool = AsyncConnectionPool(pg_dsn, min_size=1, max_size=4, open=False, kwargs={"autocommit": True})
    await pool.open()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=AllowedDestinationsResolver(allowed)))
    try:
        yield WebhookDispatcher(pool, session, b"test-key", allowed)
    finally:
        await session.close()
        await pool.close()


async def configure(dispatcher: WebhookDispatcher, **values) -> None:
    async with dispatcher.pool.connection() as conn:
        await settings_db.write(conn, values)


async def query(dispatcher: WebhookDispatcher, sql: str, params: tuple = ()) -> list[tuple]:
    async with dispatcher.pool.connection() as conn:
        return await (await conn.execute(sql, params)).fetchall()


async def queue_event(dispatcher: WebhookDispatcher, payload: dict) -> int:
    async with dispatcher.pool.connection() as conn:
        await webhooks_db.enqueue(conn, [payload])
    return (await query(dispatcher, "SELECT max(id) FROM webhook_events"))[0][0]


def dead_total() -> float:
    return REGISTRY.get_sample_value("wacluster_webhook_events_dead_total") or 0.0


async def test_failed_attempts_back_off_exponentially_with_jitter_up_to_the_cap(dispatcher):
    async with FailingReceiver() as url:
        await configure(dispatcher, webhook_url=url, callback_backoff_delay_ms=100,
                        max_callback_backoff_delay_ms=800, webhook_dead_after_seconds=3600)
        event_id = await queue_event(dispatcher, {"statuses": [{"id": "wamid.1"}]})
        delays = []
        for attempt in range(1, 8):
            assert await dispatcher.dispatch_once()
            attempts, delay, error = (await query(
                dispatcher, "SELECT attempts, extract(epoch FROM next_attempt_at - last_attempt_at)::float8, "
                            "last_error FROM webhook_events WHERE id = %s", (event_id,)))[0]
            assert attempts == attempt and error == "receiver answered 500"
            delays.append(delay)
            # Not waiting for the delay itself: what is asserted is the schedule each failure recorded.
            await query(dispatcher, "UPDATE webhook_events SET next_attempt_at = now() WHERE id = %s RETURNING id",
                        (event_id,))
    # Attempt n waits between half and all of min(cap, base * 2^(n-1)): 0.1, 0.2, 0.4, then the cap 0.8.
    for attempt, delay in enumerate(delays, start=1):
        full = min(0.8, 0.1 * 2 ** (attempt - 1))
        assert full / 2 <= delay <= full, (attempt, delays)
    assert delays[3] > delays[0] and delays[3] > delays[1]  # it grows: [0.4, 0.8] against at most 0.1 and 0.2
    assert len({round(d, 6) for d in delays[3:]}) > 1  # jittered at the cap: no fixed retry rhythm


async def test_an_event_failing_past_the_bound_is_dead_counted_and_never_retried(dispatcher):
    receiver = FailingReceiver()
    async with receiver as url:
        await configure(dispatcher, webhook_url=url, callback_backoff_delay_ms=50,
                        max_callback_backoff_delay_ms=200, webhook_dead_after_seconds=1)
        before = dead_total()
        event_id = await queue_event(dispatcher, {"statuses": [{"id": "wamid.2"}]})

        async def dead():
            await dispatcher.dispatch_once()
            rows = await query(dispatcher, "SELECT dead_at IS NOT NULL FROM webhook_events WHERE id = %s", (event_id,))
            return rows[0][0]
        await async_eventually(dead, 30, "the event dead-lettered")
        attempts, age_when_dead, next_attempt, delivered = (await query(
            dispatcher, "SELECT attempts, extract(epoch FROM dead_at - enqueued_at)::float8, "
                        "next_attempt_at = 'infinity', delivered_at IS NOT NULL FROM webhook_events WHERE id = %s",
            (event_id,)))[0]
        assert attempts >= 2 and age_when_dead >= 1.0 and next_attempt and not delivered
        assert dead_total() == before + 1
        posts = receiver.posts
        # Dead means never retried, even when its next attempt is made due again.
        await query(dispatcher, "UPDATE webhook_events SET next_attempt_at = now() WHERE id = %s RETURNING id",
                    (event_id,))
        assert not await dispatcher.dispatch_once()
        assert (await query(dispatcher, "SELECT attempts FROM webhook_events WHERE id = %s", (event_id,)))[0][0] \
            == attempts
        assert receiver.posts == posts == attempts
        await dispatcher.refresh_backlog()
        assert REGISTRY.get_sample_value("wacluster_webhook_events_dead_letters") == 1
        assert REGISTRY.get_sample_value("wacluster_webhook_events_pending") == 0
        assert dead_total() == before + 1


async def test_an_event_older_than_the_bound_is_dead_even_when_never_attempted(dispatcher):
    # No webhook URL (removed after the event was queued): nothing tries it, it must not wait forever.
    await configure(dispatcher, webhook_dead_after_seconds=3600)
    old = await queue_event(dispatcher, {"statuses": [{"id": "wamid.3"}]})
    fresh = await queue_event(dispatcher, {"statuses": [{"id": "wamid.4"}]})
    await query(dispatcher, "UPDATE webhook_events SET enqueued_at = now() - interval '2 hours' WHERE id = %s "
                            "RETURNING id", (old,))
    before = dead_total()
    await dispatcher.refresh_backlog()
    rows = dict(await query(dispatcher, "SELECT id, dead_at IS NOT NULL FROM webhook_events"))
    assert rows == {old: True, fresh: False}
    assert dead_total() == before + 1
    assert REGISTRY.get_sample_value("wacluster_webhook_events_pending") == 1
    assert REGISTRY.get_sample_value("wacluster_webhook_events_dead_letters") == 1


async def async_eventually(check, timeout: float, what: str):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


class RecoveringReceiver(http.server.BaseHTTPRequestHandler):
    """Answers 503 until `up` is set, then 200; records the bodies it accepted."""

    up = threading.Event()
    refused = 0
    accepted: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if RecoveringReceiver.up.is_set():
            RecoveringReceiver.accepted.append(json.loads(body))
            self.send_response(200)
        else:
            RecoveringReceiver.refused += 1
            self.send_response(503)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def recovering_receiver():
    RecoveringReceiver.up.clear()
    RecoveringReceiver.refused, RecoveringReceiver.accepted = 0, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RecoveringReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_a_receiver_that_recovers_gets_every_pending_event_once(lone_webapp: LocalCluster, recovering_receiver):
    cluster = lone_webapp
    cluster.configure(webhook_url=recovering_receiver, callback_backoff_delay_ms=100,
                      max_callback_backoff_delay_ms=400, webhook_dead_after_seconds=3600)
    cluster.start_webapp()
    ids = [cluster.query("INSERT INTO webhook_events (payload) VALUES (%s::jsonb) RETURNING id",
                         (json.dumps({"statuses": [{"id": f"wamid.{i}"}]}),))[0][0] for i in range(20)]
    # The receiver is down until every event failed at least twice.
    eventually(lambda: cluster.query("SELECT min(attempts) FROM webhook_events")[0][0] >= 2, 60,
               what="every event attempted twice while the receiver is down")
    RecoveringReceiver.up.set()
    eventually(lambda: cluster.query("SELECT count(*) FROM webhook_events WHERE delivered_at IS NOT NULL")[0][0]
               == len(ids), 60, what="every event delivered after the receiver came back")
    received = Counter(body["statuses"][0]["id"] for body in RecoveringReceiver.accepted)
    assert received == Counter({f"wamid.{i}": 1 for i in range(20)})
    assert cluster.query("SELECT count(*) FROM webhook_events WHERE dead_at IS NOT NULL")[0][0] == 0
