"""Versioned schema migrations, applied by `wacluster dbupgrade` under an advisory lock.

Expand and contract: an upgrade runs the new release's dbupgrade first and rolls the roles after,
so for a while the old roles run against the new schema (and must keep failing over). Each
migration therefore states the oldest schema version whose roles still work once it is applied
(`roles_from`). An *expand* migration (a new table, a nullable column, a wider check) keeps the
previous migration's value; a *contract* migration (a drop, a rename, a narrower check, a column
whose meaning changes) raises it, and may only ship once no supported release needs the old shape.
A role runs against a schema at least as new as its own whose `roles_from` does not exclude it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg

log = logging.getLogger("wacluster.db")

# A fixed key: every dbupgrade of every version serialises on it.
MIGRATION_LOCK = 0x7761636C  # "wacl"



@dataclass(frozen=True)
class Migration:
    version: int
    roles_from: int  # the oldest schema version whose roles still work once this one is applied
    sql: str


MIGRATIONS: list[Migration] = [
    Migration(1, 1, """
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
    Migration(2, 1, """
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
    # A contract step: roles of version 2 would send rows without claiming them.
    Migration(3, 3, """
    ALTER TABLE messages DROP CONSTRAINT messages_status_check;
    ALTER TABLE messages ADD CONSTRAINT messages_status_check
        CHECK (status IN ('queued', 'claimed', 'delivered', 'cancelled'));
    ALTER TABLE messages ADD COLUMN claimed_by text, ADD COLUMN claimed_epoch bigint,
        ADD COLUMN claim_session text, ADD COLUMN claimed_at timestamptz;
    DROP INDEX messages_queued;
    CREATE INDEX messages_unsettled ON messages (shard, created_at, id) WHERE status IN ('queued', 'claimed');
    """),
    # The schema records which roles it still serves (see the module's docstring). Expand.
    Migration(4, 3, """
    ALTER TABLE schema_version ADD COLUMN roles_from int;
    """),
    # Idempotency-Key on POST /v1/messages (db/messages.py): the client's key and the request's
    # fingerprint, stored with the message and so remembered as long as its row. Unique among the
    # rows not withdrawn: a withdrawal (503, never sent) gives the key back for the retry. Expand:
    # older roles never write the columns, and their rows (NULL key) are outside the index.
    Migration(5, 3, """
    ALTER TABLE messages ADD COLUMN idempotency_key text, ADD COLUMN request_fingerprint bytea;
    CREATE UNIQUE INDEX messages_idempotency_key ON messages (idempotency_key)
        WHERE idempotency_key IS NOT NULL AND status <> 'cancelled';
    """),
    # Webhook dead letters (db/webhooks.py): an event still undelivered `webhook_dead_after_seconds`
    # after it was queued is dead, never retried, kept for replay until retention prunes it.
    # Expand: a dead event's next_attempt_at is 'infinity', so roles that know no dead_at never
    # retry it either; enqueued_at's default fills rows old roles insert (existing rows: now).
    Migration(6, 3, """
    ALTER TABLE webhook_events ADD COLUMN enqueued_at timestamptz DEFAULT now(),
        ADD COLUMN last_attempt_at timestamptz, ADD COLUMN dead_at timestamptz;
    CREATE INDEX webhook_events_dead ON webhook_events (dead_at) WHERE dead_at IS NOT NULL;
    """),
    # Retention (runtime/master/retention.py): each pruning query finds its oldest settled rows
    # through an index instead of scanning the table. Expand. Built without CONCURRENTLY (a
    # migration is one transaction): writes to each table wait while its index is built.
    Migration(7, 3, """
    CREATE INDEX messages_settled ON messages (created_at) WHERE status IN ('delivered', 'cancelled');
    CREATE INDEX webhook_events_delivered ON webhook_events (delivered_at) WHERE delivered_at IS NOT NULL;
    CREATE INDEX failovers_at ON failovers (at);
    CREATE INDEX tokens_expires_at ON tokens (expires_at);
    CREATE INDEX media_created_at ON media (created_at);
    """),
    # The contacts cache of POST /v1/contacts (db/contacts.py): each number's last check, by its
    # digits. Expand: a new table older roles never read.
    Migration(8, 3, """
    CREATE TABLE contacts (
        number text PRIMARY KEY,
        status text NOT NULL CHECK (status IN ('valid', 'invalid')),
        wa_id text,
        checked_at timestamptz NOT NULL DEFAULT now()
    );
    """),
    # The API's users besides the built-in admin (db/users.py): scrypt hashes, a role, and whether
    # the next login must set a new password. Tokens are found by user to revoke them. Expand.
    Migration(9, 3, """
    CREATE TABLE users (
        username text PRIMARY KEY,
        password_hash text NOT NULL,
        role text NOT NULL CHECK (role IN ('ADMIN', 'USER')),
        must_change_password boolean NOT NULL DEFAULT true,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX tokens_username ON tokens (username);
    """),
    # The profile the account shows (db/profile.py): the `about` text, the photo (its bytes and
    # type, at most 5 MB) and the business profile. One row. Expand: a new table.
    Migration(10, 3, """
    CREATE TABLE profile (
        id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
        about text,
        photo bytea,
        photo_content_type text,
        business jsonb,
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    """),
    # Sends through the Cloud API, which has no idempotency key (db/messages.py): a claimed row
    # records when its send started (`send_started_at`, before the HTTP call) and, once sent, the
    # Cloud API's `wamid` beside our id; a permanent Cloud error ends it `failed`. Expand: the
    # status check only widens, and every query of older roles names the statuses it handles
    # ('queued', 'claimed'; retention 'delivered', 'cancelled'), so a failed row is settled for
    # them too; a row whose send started is still `claimed` for them.
    Migration(11, 3, """
    ALTER TABLE messages DROP CONSTRAINT messages_status_check;
    ALTER TABLE messages ADD CONSTRAINT messages_status_check
        CHECK (status IN ('queued', 'claimed', 'delivered', 'cancelled', 'failed'));
    ALTER TABLE messages ADD COLUMN send_started_at timestamptz, ADD COLUMN wamid text;
    CREATE INDEX messages_wamid ON messages (wamid) WHERE wamid IS NOT NULL;
    """),
    # Cloud API webhook notifications as received (db/cloud_notifications.py), one row per message,
    # status or error, stored before the webapp answers Meta 200 and relayed to the business's
    # webhook afterwards; `key` recognises Meta's retries. Expand: a new table.
    Migration(12, 3, """
    CREATE TABLE cloud_notifications (
        id bigserial PRIMARY KEY,
        key text NOT NULL UNIQUE,
        kind text NOT NULL,
        value jsonb NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        relayed_at timestamptz,
        attempts int NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        last_error text
    );
    CREATE INDEX cloud_notifications_due ON cloud_notifications (next_attempt_at) WHERE relayed_at IS NULL;
    CREATE INDEX cloud_notifications_relayed ON cloud_notifications (relayed_at) WHERE relayed_at IS NOT NULL;
    """),
    # Certificates uploaded through the API (db/certificates.py), by name: 'webhooks_ca', the CA
    # bundle webhook deliveries verify receivers with. Expand: a new table.
    Migration(13, 3, """
    CREATE TABLE certificates (
        name text PRIMARY KEY,
        pem text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    """),
    # Media sent by our id through the Cloud API (db/cloud_media.py): the Cloud media id each file
    # got when it was uploaded for a phone number, and when (Meta keeps uploads 30 days), so a file
    # is uploaded once, not once per message. Gone with its media row. Expand: a new table.
    Migration(14, 3, """
    CREATE TABLE cloud_media (
        media_id text NOT NULL REFERENCES media (id) ON DELETE CASCADE,
        phone_number_id text NOT NULL,
        cloud_media_id text NOT NULL,
        uploaded_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (media_id, phone_number_id)
    );
    """),
    # Retention of what the Cloud API path settles (db/retention.py): messages that failed for good
    # and Cloud notifications relayed to the business. The settled-messages index now also holds
    # `failed` rows; older roles' retention query (delivered, cancelled) still implies its
    # predicate and uses it. Expand.
    Migration(15, 3, """
    DROP INDEX messages_settled;
    CREATE INDEX messages_settled ON messages (created_at) WHERE status IN ('delivered', 'cancelled', 'failed');
    """),
    # Who is uploading a media file to the Cloud API for a phone number, until when (db/cloud_media.py):
    # the owners of other shards sending the same file wait for that upload instead of making their
    # own. Gone with its media row. Expand: a new table.
    Migration(16, 3, """
    CREATE TABLE cloud_media_uploads (
        media_id text NOT NULL REFERENCES media (id) ON DELETE CASCADE,
        phone_number_id text NOT NULL,
        uploader text NOT NULL,
        until timestamptz NOT NULL,
        PRIMARY KEY (media_id, phone_number_id)
    );
    """),
]
SCHEMA_VERSION = MIGRATIONS[-1].version


class SchemaMismatch(RuntimeError):
    pass


@dataclass(frozen=True)
class SchemaState:
    version: int     # 0: no schema yet
    roles_from: int  # the oldest roles' schema version it serves


async def current(conn: psycopg.AsyncConnection) -> SchemaState:
    exists = await (await conn.execute("SELECT to_regclass('public.schema_version')")).fetchone()
    if exists[0] is None:
        return SchemaState(0, 0)
    column = "roles_from" if await _has_roles_from(conn) else "NULL"
    row = await (await conn.execute(f"SELECT version, {column} FROM schema_version")).fetchone()
    if not row:
        return SchemaState(0, 0)
    # Before migration 4 a schema served only its own version's roles.
    return SchemaState(row[0], row[1] if row[1] is not None else row[0])


async def _has_roles_from(conn: psycopg.AsyncConnection) -> bool:
    row = await (await conn.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = 'schema_version' AND column_name = 'roles_from'")).fetchone()
    return row is not None


async def current_version(conn: psycopg.AsyncConnection) -> int:
    return (await current(conn)).version


def incompatibility(state: SchemaState, ours: int = SCHEMA_VERSION) -> str | None:
    """Why roles built for schema `ours` cannot run against `state`, or None when they can."""
    if state.version < ours:
        return (f"database schema version {state.version} is older than this release needs ({ours}); "
                f"run `wacluster dbupgrade` of this release")
    if state.roles_from > ours:
        return (f"database schema version {state.version} no longer serves roles of schema {ours} "
                f"(only {state.roles_from} and later); roll the roles to the release that ran dbupgrade")
    return None


async def migrate(conn: psycopg.AsyncConnection,
                  migrations: list[Migration] = MIGRATIONS) -> tuple[int, int]:
    """Apply every missing migration; idempotent. Returns (version before, version after).
    A database already newer is left as it is when it still serves this release's roles (a
    rollback of the roles); otherwise that is an error."""
    ours = migrations[-1].version
    await conn.set_autocommit(True)
    await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        before = await current(conn)
        if before.version > ours:
            reason = incompatibility(before, ours)
            if reason:
                raise SchemaMismatch(reason)
            log.info("database schema version %d is newer than this release's (%d) and still serves "
                     "its roles; nothing to do", before.version, ours)
            return before.version, before.version
        for migration in migrations:
            if migration.version <= before.version:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await _record(conn, migration)
            log.info("applied schema migration %d (serves roles from schema %d)",
                     migration.version, migration.roles_from)
        return before.version, ours
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


async def _record(conn: psycopg.AsyncConnection, migration: Migration) -> None:
    await conn.execute(
        "INSERT INTO schema_version (id, version) VALUES (1, %s) "
        "ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, applied_at = now()",
        (migration.version,))
    if await _has_roles_from(conn):  # from migration 4 on
        await conn.execute("UPDATE schema_version SET roles_from = %s", (migration.roles_from,))


async def check(conn: psycopg.AsyncConnection) -> None:
    """Refuse to run against a schema this release's roles cannot work with."""
    reason = incompatibility(await current(conn))
    if reason:
        raise SchemaMismatch(reason)
