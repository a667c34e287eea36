"""The coreapp's control port (Port.CONTROL): GET /heartbeat and POST /handoff for the masters,
POST /messages for the webapps (bodies: `wacluster.api.control`; errors in the API's shape, never a stack trace). Only
the cluster's own masters and webapps get in: every call carries the cluster's internal token.

A hand-off is taken only by the serving owner of the batch's shard, only into room its outbox
has (else 503: the webapp retries, the rows stay queued), and only for the rows it can claim in
the database: queued, in that shard, owned by it at its epoch. Everything else in the batch is
acknowledged without being sent: it is either another owner's to send, already sent, withdrawn,
or was never stored.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from aiohttp import web
from pydantic import ValidationError

from wacluster.api.control import MAX_HAND_OFF, HandOff, HandOffAccepted, HandoffRequest, Heartbeat
from wacluster.api.errors import describe_validation
from wacluster.db import messages as messages_db
from wacluster.runtime.http_errors import error_response, http_exception_response, internal_error_response
from wacluster.runtime.internal_auth import RefusalLog, require_token
from wacluster.runtime.coreapp.handoff import request_handoff
from wacluster.runtime.coreapp.outbox import Claimed

if TYPE_CHECKING:
    from wacluster.runtime.coreapp.role import Coreapp

log = logging.getLogger("wacluster.coreapp")

MAX_BODY = MAX_HAND_OFF * 1024  # ids only; earlier webapps also sent each message's body


@dataclass(frozen=True)
class Refusal:
    kind: str  # an error kind of wacluster.api.errors
    details: str
    retry_after: str | None = None


async def accept(c: Coreapp, shard: int, ids: list[str]) -> list[str] | Refusal:
    """Take a webapp's batch for `shard`: the ids claimed now (to be sent by this owner), or why
    the batch was refused (nothing claimed)."""
    session = c.session
    if not (session is not None and c.lifecycle.accepts_messages and session.shard == shard
            and session.lease.valid(time.monotonic())):
        serving = session.shard if session is not None else None
        return Refusal("not_owner", f"{c.me.name} is not serving shard {shard} "
                                    f"({c.lifecycle.state.value}, shard {serving})")
    ids = list(dict.fromkeys(ids))
    if session.outbox.overflowing or not session.outbox.reserve(len(ids)):
        # The rows stay queued; the backlog sends them in their stored order as room frees.
        session.outbox.refuse()
        c.backlog.wake()
        return Refusal("not_ready", f"{c.me.name} holds {session.outbox.unsettled} of at most "
                                    f"{session.outbox.capacity} unsent messages of shard {shard}; the batch "
                                    "waits in the database for the shard's backlog", "1")
    try:
        try:
            async with c.pool.connection() as conn:
                claimed = await messages_db.claim(conn, session.claimer(c.me.name), ids)
        except Exception as exc:  # in doubt: perhaps claimed; the backlog scan finds out and sends
            session.outbox.lose(ids)
            c.backlog.wake()
            return Refusal("not_ready", f"{c.me.name} could not claim the batch in the database ({exc}); "
                                        "retry shortly", "1")
        session.outbox.put(Claimed(m.id, m.recipient, m.body) for m in claimed)
    finally:
        session.outbox.unreserve(len(ids))
    return [m.id for m in claimed]


def control_app(c: Coreapp, internal_token: str) -> web.Application:
    """The control port; every call needs `internal_token` (runtime/internal_auth.py), checked
    before the body is read."""
    app = web.Application(client_max_size=MAX_BODY,
                          middlewares=[_errors, require_token(internal_token, RefusalLog(log))])
    app.router.add_get("/heartbeat", partial(_heartbeat, c))
    app.router.add_post("/messages", partial(_messages, c))
    app.router.add_post("/handoff", partial(_handoff, c))
    return app


async def _heartbeat(c: Coreapp, _: web.Request) -> web.Response:
    session = c.session if c.lifecycle.holds_shard else None
    beat = Heartbeat(name=c.me.name, node_id=c.me.node_id, serving=session is not None,
                     shard=session.shard if session else None, epoch=session.epoch if session else None,
                     stopping=c.lifecycle.stopping, state=c.lifecycle.state.value)
    return web.json_response(beat.model_dump())


async def _messages(c: Coreapp, request: web.Request) -> web.Response:
    try:
        data = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        return error_response("bad_request", f"the body is not valid JSON: {exc}")
    if not isinstance(data, dict):
        return error_response("bad_request", "the body must be a JSON object")
    try:
        hand_off = HandOff.model_validate(data)
    except ValidationError as exc:
        return error_response("bad_request", describe_validation(exc))
    ids = [m.id for m in hand_off.messages]
    outcome = await accept(c, hand_off.shard, ids)
    if isinstance(outcome, Refusal):
        return error_response(outcome.kind, outcome.details,
                      {"Retry-After": outcome.retry_after} if outcome.retry_after else None)
    return web.json_response(HandOffAccepted(accepted=ids, claimed=outcome).model_dump(), status=202)


async def _handoff(c: Coreapp, request: web.Request) -> web.Response:
    """202 once the handoff runs (drain, release, stand by); 409 when this coreapp does not serve
    that shard at that epoch (the master's view is stale: it decides again)."""
    try:
        asked = HandoffRequest.model_validate_json(await request.read())
    except ValidationError as exc:
        return error_response("bad_request", describe_validation(exc))
    problem = request_handoff(c, asked.shard, asked.epoch, asked.reason)
    if problem:
        return error_response("not_owner", problem)
    return web.json_response({"shard": asked.shard, "epoch": asked.epoch, "state": c.lifecycle.state.value},
                             status=202)


@web.middleware
async def _errors(request: web.Request, handler):
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return http_exception_response(request, exc, f"a hand-off carries at most {MAX_HAND_OFF} messages")
    except Exception:  # never a stack trace to the caller; the log has it
        return internal_error_response(log, request, "coreapp")
