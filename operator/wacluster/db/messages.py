"""Outgoing messages: durable before the API answers, sent only by the coreapp that claimed them.

A row's life: `queued` (stored by a webapp) → `claimed` (by the owner of its shard, at its epoch,
in one of its serving sessions) → `delivered` (on the gateway's ack), or, through the Cloud API,
`failed` (a permanent error; see the Cloud section below). A webapp that found no owner
in time withdraws it instead: `queued` → `cancelled`. The claim and the withdrawal each change the
row only while it is `queued`, so whichever comes first decides: a withdrawn message is never
sent, a claimed one is never withdrawn. A claim also checks, in the same statement, that the
claimer owns the row's shard at its epoch with a live lease (the shard-map row is locked FOR
SHARE meanwhile), so a coreapp never sends a message of another shard, a message that does not
exist, or one that another owner claimed since. A claim left behind by an ended session (fenced,
killed, failed over) is taken over by the shard's current owner, which asks the gateway before
sending it again.

A row may hold the client's `Idempotency-Key` (api/idempotency.py) and the fingerprint of its
request; no two rows that are not `cancelled` hold one key (a partial unique index, schema 5).
The key follows the row: stored with it (`queued`: its request may still be answered 503, so a
repeat is told to wait, 409), bound to it for good once claimed (`claimed`, `delivered`: it is or
will be sent, and a repeat gets the same id, 201), and free again once withdrawn (`cancelled`:
never sent, its request was answered 503, and a retry stores a new row under the same key). A
key lives as long as its row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class Idempotency:
    key: str
    fingerprint: bytes  # of the request that stored the row


@dataclass(frozen=True)
class Message:
    id: str
    recipient: str
    shard: int
    body: dict[str, Any]
    idempotency: Idempotency | None = None


@dataclass(frozen=True)
class KeyHolder:
    """The row already holding an idempotency key."""

    id: str
    fingerprint: bytes
    status: str


@dataclass(frozen=True)
class Claimer:
    """Who claims: the owner of `shard` at `epoch`, in one serving session."""

    coreapp: str
    shard: int
    epoch: int
    session: str

    def params(self) -> dict[str, Any]:
        return {"coreapp": self.coreapp, "shard": self.shard, "epoch": self.epoch, "session": self.session}


@dataclass(frozen=True)
class Unsettled:
    """A row of the backlog: queued, or claimed by a session that no longer holds it in hand."""

    id: str
    created_at: datetime
    mine: bool  # claimed by the asking session itself (an old claim it lost track of)


async def insert(conn: AsyncConnection, message: Message, route_hash: int) -> None:
    await conn.execute(
        "INSERT INTO messages (id, recipient, route_hash, shard, body) VALUES (%s, %s, %s, %s, %s)",
        (message.id, message.recipient, route_hash, message.shard, Jsonb(message.body)))


async def insert_many(conn: AsyncConnection, rows: list[tuple[Message, int]]) -> dict[str, KeyHolder]:
    """One statement for a batch: arrays unnested into rows. Cheaper in CPU on both sides than a
    pipelined executemany (one Bind/Execute per row), and atomic: all rows or none.

    Messages with an idempotency key (distinct within the batch) are stored only where no other
    row holds their key; the answer maps each key that was already held to its holder, in the
    same statement, so two webapps storing one key at once cannot both succeed. A batch without
    keys runs the plain INSERT and costs nothing more."""
    columns = ([m.id for m, _ in rows], [m.recipient for m, _ in rows], [h for _, h in rows],
               [m.shard for m, _ in rows], [Jsonb(m.body) for m, _ in rows])
    if not any(m.idempotency for m, _ in rows):
        await conn.execute(
            "INSERT INTO messages (id, recipient, route_hash, shard, body) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::int[], %s::jsonb[])", columns)
        return {}
    # DO UPDATE (a no-op) rather than DO NOTHING: it locks and returns the holder even when the
    # holder was committed after this statement's snapshot (a concurrent duplicate), which a
    # separate SELECT would not see; and if the holder is withdrawn meanwhile, PostgreSQL retries
    # the insert, which then takes the freed key.
    stored = await (await conn.execute(
        "WITH stored AS ("
        " INSERT INTO messages (id, recipient, route_hash, shard, body, idempotency_key, request_fingerprint) "
        " SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::int[], %s::jsonb[], %s::text[], %s::bytea[]) "
        " ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL AND status <> 'cancelled' "
        " DO UPDATE SET idempotency_key = messages.idempotency_key "
        " RETURNING id, idempotency_key, request_fingerprint, status) "
        "SELECT id, idempotency_key, request_fingerprint, status FROM stored WHERE idempotency_key IS NOT NULL",
        (*columns, [m.idempotency.key if m.idempotency else None for m, _ in rows],
         [m.idempotency.fingerprint if m.idempotency else None for m, _ in rows]))).fetchall()
    ours = {m.idempotency.key: m.id for m, _ in rows if m.idempotency}
    return {key: KeyHolder(row_id, bytes(fp), status) for row_id, key, fp, status in stored
            if ours[key] != row_id}


async def queued(conn: AsyncConnection, shard: int, limit: int = 500) -> list[Message]:
    rows = await (await conn.execute(
        "SELECT id, recipient, shard, body FROM messages WHERE status = 'queued' AND shard = %s "
        "ORDER BY created_at LIMIT %s", (shard, limit))).fetchall()
    return [Message(*row) for row in rows]


# The claimer owns the shard at its epoch with a live lease; the row stays locked until the claim
# commits, so no promotion, revocation or re-partition can come between the check and the claim.
_OWNER = ("owner AS (SELECT shard FROM shard_map WHERE shard = %(shard)s AND epoch = %(epoch)s "
          "AND coreapp = %(coreapp)s AND NOT revoked AND lease_until > now() FOR SHARE)")
_CLAIM = ("UPDATE messages m SET status = 'claimed', claimed_by = %(coreapp)s, claimed_epoch = %(epoch)s, "
          "claim_session = %(session)s, claimed_at = now() FROM owner ")


async def queued_by_shard(conn: AsyncConnection) -> dict[int, int]:
    """Messages stored and not yet sent, per shard (the `messages_queued` partial index)."""
    rows = await (await conn.execute(
        "SELECT shard, count(*) FROM messages WHERE status = 'queued' GROUP BY shard")).fetchall()
    return {shard: count for shard, count in rows}


async def claim(conn: AsyncConnection, claimer: Claimer, ids: list[str]) -> list[Message]:
    """The hand-off from a webapp: claim those of `ids` that are queued in the claimer's shard.
    Everything else (another shard's, already claimed, delivered, withdrawn, unknown) is left
    alone and must not be sent. In the order of `ids`."""
    if not ids:
        return []
    rows = await (await conn.execute(
        f"WITH {_OWNER} {_CLAIM}"
        "WHERE m.id = ANY(%(ids)s) AND m.shard = owner.shard AND m.status = 'queued' "
        "RETURNING m.id, m.recipient, m.shard, m.body", {**claimer.params(), "ids": ids})).fetchall()
    return _in_order_of(ids, rows)


async def unsettled(conn: AsyncConnection, claimer: Claimer, after: tuple[datetime, str] | None, limit: int,
                    stale_after: float) -> list[Unsettled]:
    """One page of the claimer's shard's backlog, in (created_at, id) order after `after`: rows
    queued, claimed by another session, or claimed by this session more than `stale_after`
    seconds ago (the caller drops those still in hand)."""
    after_at, after_id = after if after is not None else ("-infinity", "")
    rows = await (await conn.execute(
        "SELECT id, created_at, status = 'claimed' AND claim_session = %(session)s FROM messages "
        "WHERE shard = %(shard)s AND status IN ('queued', 'claimed') "
        "  AND (status = 'queued' OR claim_session IS DISTINCT FROM %(session)s "
        "       OR claimed_at < now() - make_interval(secs => %(stale)s)) "
        "  AND (created_at, id) > (%(after_at)s::timestamptz, %(after_id)s) "
        "ORDER BY created_at, id LIMIT %(limit)s",
        {**claimer.params(), "stale": stale_after, "after_at": after_at, "after_id": after_id,
         "limit": limit})).fetchall()
    return [Unsettled(*row) for row in rows]


async def reclaim(conn: AsyncConnection, claimer: Claimer, ids: list[str], mine: list[str]) -> list[Message]:
    """The backlog: claim those of `ids` in the claimer's shard that are queued or claimed by
    another session, and those of `mine` (this session's own claims it lost track of). Any of
    them may have been sent before: ask the gateway before sending. In the order of `ids`."""
    if not ids:
        return []
    rows = await (await conn.execute(
        f"WITH {_OWNER} {_CLAIM}"
        "WHERE m.id = ANY(%(ids)s) AND m.shard = owner.shard "
        "  AND (m.status = 'queued' OR (m.status = 'claimed' AND (m.claim_session IS DISTINCT FROM %(session)s "
        "                                                         OR m.id = ANY(%(mine)s)))) "
        "RETURNING m.id, m.recipient, m.shard, m.body",
        {**claimer.params(), "ids": ids, "mine": mine})).fetchall()
    return _in_order_of(ids, rows)


def _in_order_of(ids: list[str], rows: list[tuple]) -> list[Message]:
    """RETURNING gives rows in the order the plan found them (the table's, an index's); a
    recipient's messages are sent in the order the caller asked for them."""
    position = {message_id: n for n, message_id in enumerate(ids)}
    return sorted((Message(*row) for row in rows), key=lambda m: position[m.id])


async def mark_delivered(conn: AsyncConnection, ids: list[str], coreapp: str, epoch: int) -> int:
    """The gateway acknowledged (or already had) these: delivered, whoever claimed them."""
    if not ids:
        return 0
    cur = await conn.execute(
        "UPDATE messages SET status = 'delivered', delivered_at = now(), delivered_by = %s, delivered_epoch = %s "
        "WHERE id = ANY(%s) AND status IN ('queued', 'claimed')", (coreapp, epoch, ids))
    return cur.rowcount


# --- sends through the Cloud API (schema 11) -------------------------------------------------------
# The Cloud API has no idempotency key, so a send is recorded before it leaves: `send_started_at`
# on the claimed row, then `delivered` with the Cloud API's wamid once it answered, or `failed`
# on a permanent error. A row still claimed with its send started is *in doubt*: the HTTP call
# may or may not have reached Meta. The next session that reclaims it waits a bounded window for
# it to be resolved (by a status webhook) before sending it again.


@dataclass(frozen=True)
class SendState:
    id: str
    status: str
    in_doubt_for: float | None  # seconds left of the in-doubt window; None: no send started


async def mark_sending(conn: AsyncConnection, claimer: Claimer, ids: list[str]) -> list[str]:
    """Record that these sends start now; returns the ids that may be sent: still claimed by the
    claimer's session, while it owns the shard at its epoch with a live lease (the same check as
    a claim), so a session that lost its shard starts no send."""
    if not ids:
        return []
    rows = await (await conn.execute(
        f"WITH {_OWNER} UPDATE messages m SET send_started_at = now() FROM owner "
        "WHERE m.id = ANY(%(ids)s) AND m.shard = owner.shard AND m.status = 'claimed' "
        "  AND m.claim_session = %(session)s RETURNING m.id", {**claimer.params(), "ids": ids})).fetchall()
    return [row[0] for row in rows]


async def mark_sent(conn: AsyncConnection, sent: dict[str, str], coreapp: str, epoch: int) -> int:
    """The Cloud API accepted these (our id -> its wamid): delivered, the wamid beside our id."""
    if not sent:
        return 0
    cur = await conn.execute(
        "UPDATE messages m SET status = 'delivered', wamid = s.wamid, delivered_at = now(), delivered_by = %s, "
        "  delivered_epoch = %s FROM unnest(%s::text[], %s::text[]) AS s(id, wamid) "
        "WHERE m.id = s.id AND m.status IN ('queued', 'claimed')",
        (coreapp, epoch, list(sent), list(sent.values())))
    return cur.rowcount


async def mark_failed(conn: AsyncConnection, message_id: str) -> bool:
    """The Cloud API refused this message for good: failed (never sent again)."""
    cur = await conn.execute(
        "UPDATE messages SET status = 'failed', delivered_at = now() WHERE id = %s AND status IN ('queued', 'claimed')",
        (message_id,))
    return cur.rowcount == 1


async def ids_by_wamid(conn: AsyncConnection, wamids: list[str]) -> dict[str, str]:
    """Our ids of the messages the Cloud API accepted under these wamids (those we know)."""
    if not wamids:
        return {}
    rows = await (await conn.execute("SELECT wamid, id FROM messages WHERE wamid = ANY(%s)", (wamids,))).fetchall()
    return dict(rows)


async def resolve_in_doubt(conn: AsyncConnection, message_id: str, outcome: str, wamid: str | None) -> bool:
    """A Cloud status webhook about one of our messages whose send is in doubt (claimed, send
    started, no answer recorded): `delivered` (Meta has it: sent, delivered or read) with its
    wamid, by the session that started the send, or `failed`. Any other row is left alone. True
    when the row was in doubt; the owner's in-doubt wait then ends without a resend."""
    if outcome not in ("delivered", "failed"):
        raise ValueError(f"outcome must be delivered or failed, not {outcome!r}")
    # NOWAIT: the caller holds other rows' locks (a relay batch); waiting here for a row a new
    # owner's backlog is reclaiming (many rows, in its own order) could close a deadlock, and the
    # reclaim holds the shard map's row meanwhile, so the owner's lease could not be renewed. A
    # busy row raises LockNotAvailable; the caller tries again shortly.
    cur = await conn.execute(
        "WITH target AS (SELECT id FROM messages WHERE id = %s FOR UPDATE NOWAIT) "
        "UPDATE messages m SET status = %s, wamid = coalesce(m.wamid, %s), delivered_at = now(), "
        "  delivered_by = CASE WHEN %s = 'delivered' THEN m.claimed_by END, "
        "  delivered_epoch = CASE WHEN %s = 'delivered' THEN m.claimed_epoch END "
        "FROM target WHERE m.id = target.id AND m.status = 'claimed' AND m.send_started_at IS NOT NULL",
        (message_id, outcome, wamid, outcome, outcome))
    return cur.rowcount == 1


async def send_states(conn: AsyncConnection, ids: list[str], window: float) -> list[SendState]:
    """Each row's status and, for a claimed row whose send started, what is left of the in-doubt
    `window` seconds after the start (database clock; 0 once it passed)."""
    if not ids:
        return []
    rows = await (await conn.execute(
        "SELECT id, status, CASE WHEN status = 'claimed' AND send_started_at IS NOT NULL THEN "
        "  greatest(0, extract(epoch FROM send_started_at + make_interval(secs => %s) - now()))::float8 END "
        "FROM messages WHERE id = ANY(%s)", (window, ids))).fetchall()
    return [SendState(*row) for row in rows]


async def cancel(conn: AsyncConnection, message_id: str) -> bool:
    """Withdraw a message no coreapp claimed: True means it will never be sent. False when a
    coreapp claimed it first (it will be sent, or was) or it is gone."""
    cur = await conn.execute("UPDATE messages SET status = 'cancelled' WHERE id = %s AND status = 'queued'",
                             (message_id,))
    return cur.rowcount == 1


async def status(conn: AsyncConnection, message_id: str) -> str | None:
    row = await (await conn.execute("SELECT status FROM messages WHERE id = %s", (message_id,))).fetchone()
    return row[0] if row else None
