"""Retention against a real PostgreSQL: settled rows older than their retention are pruned in
batches, unsettled ones never are whatever their age (queued and claimed messages, webhook
events still being retried); the primary master does it on its interval; a webapp prunes old
media, file and row, one webapp at a time."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from prometheus_client import REGISTRY
from psycopg_pool import AsyncConnectionPool

from runtime_cluster import start, webapp
from wacluster.db import schema
from wacluster.db.settings import DEFAULTS
from wacluster.runtime.master.retention import Retention
from wacluster.runtime.webapp.media_retention import MEDIA_RETENTION_LOCK, MediaRetention
from wacluster_testenv.eventually import eventually
from wacluster_testenv.localcluster import LocalCluster

pytestmark = pytest.mark.integration

# At the default retention (messages 30 days, webhook events 7, failovers 90), what must go and what must stay.
ROWS = """
INSERT INTO messages (id, recipient, route_hash, shard, body, status, created_at) VALUES
    ('old-delivered-1', '+1', 1, 0, '{}', 'delivered', now() - interval '40 days'),
    ('old-delivered-2', '+1', 1, 0, '{}', 'delivered', now() - interval '40 days'),
    ('old-delivered-3', '+1', 1, 0, '{}', 'delivered', now() - interval '31 days'),
    ('old-cancelled', '+1', 1, 0, '{}', 'cancelled', now() - interval '35 days'),
    ('old-failed', '+1', 1, 0, '{}', 'failed', now() - interval '35 days'),
    ('old-queued', '+1', 1, 0, '{}', 'queued', now() - interval '60 days'),
    ('old-claimed', '+1', 1, 0, '{}', 'claimed', now() - interval '60 days'),
    ('new-delivered', '+1', 1, 0, '{}', 'delivered', now() - interval '29 days');
INSERT INTO webhook_events (payload, enqueued_at, delivered_at, dead_at, next_attempt_at) VALUES
    ('{"e": "old-delivered"}', now() - interval '9 days', now() - interval '8 days', NULL, now()),
    ('{"e": "old-dead"}', now() - interval '10 days', NULL, now() - interval '9 days', 'infinity'),
    ('{"e": "old-pending"}', now() - interval '30 days', NULL, NULL, now() + interval '1 minute'),
    ('{"e": "new-delivered"}', now() - interval '2 days', now() - interval '1 day', NULL, now()),
    ('{"e": "new-dead"}', now() - interval '2 days', NULL, now() - interval '1 day', 'infinity');
INSERT INTO cloud_notifications (key, kind, value, received_at, relayed_at) VALUES
    ('old-relayed', 'message', '{}', now() - interval '9 days', now() - interval '8 days'),
    ('old-unrelayed', 'message', '{}', now() - interval '30 days', NULL),
    ('new-relayed', 'message', '{}', now() - interval '2 days', now() - interval '1 day');
INSERT INTO failovers (shard, from_coreapp, to_coreapp, epoch, reason, at) VALUES
    (0, 'a', 'b', 1, 'old', now() - interval '100 days'), (0, 'b', 'a', 2, 'new', now() - interval '10 days');
INSERT INTO tokens (token, username, expires_at) VALUES
    ('expired', 'admin', now() - interval '2 days'), ('valid', 'admin', now() + interval '1 hour');
"""


def remaining(conn_or_cluster) -> dict[str, set[str]]:
    query = conn_or_cluster.query if isinstance(conn_or_cluster, LocalCluster) else \
        (lambda sql: conn_or_cluster.execute(sql).fetchall())
    return {
        "messages": {r[0] for r in query("SELECT id FROM messages")},
        "webhook_events": {r[0] for r in query("SELECT payload->>'e' FROM webhook_events")},
        "cloud_notifications": {r[0] for r in query("SELECT key FROM cloud_notifications")},
        "failovers": {r[0] for r in query("SELECT reason FROM failovers")},
        "tokens": {r[0] for r in query("SELECT token FROM tokens")},
    }


KEPT = {
    "messages": {"old-queued", "old-claimed", "new-delivered"},
    "webhook_events": {"old-pending", "new-delivered", "new-dead"},
    "cloud_notifications": {"old-unrelayed", "new-relayed"},
    "failovers": {"new"},
    "tokens": {"valid"},
}


def pruned_total(table: str) -> float:
    return REGISTRY.get_sample_value("wacluster_rows_pruned_total", {"table": table}) or 0.0


@pytest.fixture
async def pool(pg_dsn):
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        await schema.migrate(conn)
    pool = AsyncConnectionPool(pg_dsn, min_size=1, max_size=4, open=False, kwargs={"autocommit": True})
    await pool.open()
    yield pool
    await pool.close()


async def test_settled_rows_past_retention_are_pruned_in_batches_and_unsettled_ones_never(pool, pg_dsn):
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(ROWS)
    before = {table: pruned_total(table) for table in KEPT}
    retention = Retention("master1", pool, lambda: DEFAULTS, lambda: True, batch=2, pause=0)
    pruned = {"messages": 5, "webhook_events": 2, "cloud_notifications": 1, "failovers": 1, "tokens": 1}
    assert await retention.prune() == pruned
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert remaining(conn) == KEPT
    assert {table: pruned_total(table) - before[table] for table in KEPT} == pruned
    assert await retention.prune() == {table: 0 for table in pruned}


async def test_zero_days_keeps_a_table_forever_and_a_master_that_may_not_act_prunes_nothing(pool, pg_dsn):
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(ROWS)
    everything = {**DEFAULTS, "retention_messages_days": 0}
    assert set((await Retention("master2", pool, lambda: everything, lambda: False, batch=2, pause=0).prune())
               .values()) == {0}
    pruned = await Retention("master1", pool, lambda: everything, lambda: True, batch=2, pause=0).prune()
    assert "messages" not in pruned
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert remaining(conn)["messages"] == {"old-delivered-1", "old-delivered-2", "old-delivered-3",
                                               "old-cancelled", "old-failed", "old-queued", "old-claimed",
                                               "new-delivered"}


def test_the_primary_master_prunes_on_its_interval(cluster: LocalCluster):
    cluster.configure(retention_interval=0.5)
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute(ROWS)
    start(cluster, masters=1, coreapps=0, register=False)
    eventually(lambda: remaining(cluster) == KEPT, 60, what="the primary master pruning")
    assert "retention pruned" in cluster.roles["master1"].output()


def media_rows(pg_dsn: str) -> set[str]:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM media").fetchall()}


async def test_old_media_lose_file_and_row_new_ones_stay_one_webapp_at_a_time(pool, pg_dsn, tmp_path: Path):
    old, old_without_file, new = "a" * 32, "b" * 32, "c" * 32
    for media_id in (old, new):
        (tmp_path / media_id).write_bytes(b"bytes")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO media (id, content_type, size, created_at) VALUES "
                     "(%s, 'text/plain', 5, now() - interval '31 days'), "
                     "(%s, 'text/plain', 5, now() - interval '45 days'), "
                     "(%s, 'text/plain', 5, now() - interval '29 days')", (old, old_without_file, new))
        # Another webapp prunes (holds the lock): this one does nothing.
        conn.execute("SELECT pg_advisory_lock(%s)", (MEDIA_RETENTION_LOCK,))
        retention = MediaRetention(pool, tmp_path, batch=1, pause=0)
        assert await retention.prune() is None
        assert media_rows(pg_dsn) == {old, old_without_file, new}
        conn.execute("SELECT pg_advisory_unlock(%s)", (MEDIA_RETENTION_LOCK,))
    before = pruned_total("media")
    assert await retention.prune() == 2
    assert media_rows(pg_dsn) == {new}
    assert sorted(p.name for p in tmp_path.iterdir()) == [new]
    assert pruned_total("media") == before + 2


def test_a_running_webapp_prunes_old_media(lone_webapp: LocalCluster):
    cluster = lone_webapp
    api = webapp(cluster)
    uploaded = api.request("POST", "/v1/media", raw=b"old bytes", content_type="text/plain")
    assert uploaded.status == 201, uploaded.body
    media_id = uploaded.body["media"][0]["id"]
    path = cluster.workdir / "media" / media_id
    assert path.exists()
    cluster.query("UPDATE media SET created_at = now() - interval '31 days' RETURNING id")
    cluster.configure(retention_interval=0.5)
    eventually(lambda: not path.exists() and not cluster.query("SELECT id FROM media"), 60,
               what="the old media pruned by the webapp")
    assert api.request("GET", f"/v1/media/{media_id}").status == 404
