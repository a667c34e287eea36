"""Versioned schema migrations, applied by `wacluster dbupgrade` under an advisory lock."""

from __future__ import annotations

import logging

import psycopg

log = logging.getLogger("wacluster.db")

# A fixed key: every dbupgrade of every version serialises on it.
MIGRATION_LOCK = 0x7761636C  # "wacl"

MIGRATIONS: list[tuple[int, str]] = [
    (1, """
    CREATE TABLE schema_version (id int PRIMARY KEY DEFAULT 1 CHECK (id = 1), version int NOT NULL,
                                 applied_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE nodes (
        name text PRIMARY KEY,
        role text NOT NULL CHECK (role IN ('master', 'coreapp')),
        node_id text NOT NULL,
        address text NOT NULL,
        version text NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        db_heartbeat_at timestamptz NOT NULL DEFAULT now(),
        gateway_status text NOT NULL DEFAULT 'disconnected',
        is_primary boolean NOT NULL DEFAULT false,
        stopping boolean NOT NULL DEFAULT false,
        error text
    );
    CREATE TABLE heartbeats (
        master text NOT NULL,
        coreapp text NOT NULL,
        last_ok_at timestamptz,
        last_try_at timestamptz NOT NULL,
        rtt_ms double precision,
        PRIMARY KEY (master, coreapp)
    );
    CREATE TABLE master_term (id int PRIMARY KEY DEFAULT 1 CHECK (id = 1), term bigint NOT NULL,
                              holder text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE shard_map (
        shard int PRIMARY KEY,
        coreapp text,
        epoch bigint NOT NULL DEFAULT 0,
        master_term bigint NOT NULL DEFAULT 0,
        since timestamptz NOT NULL DEFAULT now(),
        lease_until timestamptz NOT NULL DEFAULT now(),
        revoked boolean NOT NULL DEFAULT false,
        reason text
    );
    CREATE TABLE settings (key text PRIMARY KEY, value jsonb NOT NULL,
                           updated_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE account (id int PRIMARY KEY DEFAULT 1 CHECK (id = 1), phone text NOT NULL,
                          registered_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE messages (
        id text PRIMARY KEY,
        recipient text NOT NULL,
        route_hash bigint NOT NULL,
        shard int NOT NULL,
        body jsonb NOT NULL,
        status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'delivered', 'cancelled')),
        created_at timestamptz NOT NULL DEFAULT now(),
        delivered_at timestamptz,
        delivered_by text,
        delivered_epoch bigint
    );
    CREATE INDEX messages_queued ON messages (shard, created_at) WHERE status = 'queued';
    CREATE TABLE tokens (token text PRIMARY KEY, username text NOT NULL, expires_at timestamptz NOT NULL);
    CREATE TABLE failovers (id bigserial PRIMARY KEY, shard int NOT NULL, from_coreapp text,
                            to_coreapp text, epoch bigint NOT NULL, reason text NOT NULL,
                            at timestamptz NOT NULL DEFAULT now());
    """),
    (2, """
    CREATE TABLE media (id text PRIMARY KEY, content_type text NOT NULL, size bigint NOT NULL,
                        created_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE webhook_events (
        id bigserial PRIMARY KEY,
        payload jsonb NOT NULL,
        attempts int NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        delivered_at timestamptz,
        last_error text
    );
    CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at) WHERE delivered_at IS NULL;
    """),
    # A message is sent only by the coreapp that claimed it (db/messages.py): queued → claimed →
    # delivered, or queued → cancelled. The claim records who, at which epoch, in which session.
    (3, """
    ALTER TABLE messages DROP CONSTRAINT messages_status_check;
    ALTER TABLE messages ADD CONSTRAINT messages_status_check
        CHECK (status IN ('queued', 'claimed', 'delivered', 'cancelled'));
    ALTER TABLE messages ADD COLUMN claimed_by text, ADD COLUMN claimed_epoch bigint,
        ADD COLUMN claim_session text, ADD COLUMN claimed_at timestamptz;
    DROP INDEX messages_queued;
    CREATE INDEX messages_unsettled ON messages (shard, created_at, id) WHERE status IN ('queued', 'claimed');
    """),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


class SchemaMismatch(RuntimeError):
    pass


async def current_version(conn: psycopg.AsyncConnection) -> int:
    exists = await (await conn.execute("SELECT to_regclass('public.schema_version')")).fetchone()
    if exists[0] is None:
        return 0
    row = await (await conn.execute("SELECT version FROM schema_version")).fetchone()
    return row[0] if row else 0


async def migrate(conn: psycopg.AsyncConnection) -> tuple[int, int]:
    """Apply every missing migration; idempotent. Returns (version before, version after)."""
    await conn.set_autocommit(True)
    await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        before = await current_version(conn)
        if before > SCHEMA_VERSION:
            raise SchemaMismatch(f"the database schema is version {before}, newer than this release "
                                 f"understands ({SCHEMA_VERSION}); run the dbupgrade of that release")
        for version, sql in MIGRATIONS:
            if version <= before:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_version (id, version) VALUES (1, %s) "
                    "ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, applied_at = now()",
                    (version,))
            log.info("applied schema migration %d", version)
        return before, SCHEMA_VERSION
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


async def check(conn: psycopg.AsyncConnection) -> None:
    """Refuse to run against a schema this release does not understand."""
    version = await current_version(conn)
    if version != SCHEMA_VERSION:
        direction = "older" if version < SCHEMA_VERSION else "newer"
        raise SchemaMismatch(f"database schema version {version} is {direction} than this release "
                             f"expects ({SCHEMA_VERSION}); run `wacluster dbupgrade` of the matching release")
