"""The REST endpoints. Each handler validates, calls the database or the router, and answers."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from wacluster.api import idempotency
from wacluster.api.interprocess import Role
from wacluster.api.rest import (
    AccountRequest, ApplicationSettings, OutgoingMessage, ShardsRequest, VerifyRequest,
)
from wacluster.db import account as account_db
from wacluster.db import messages as messages_db
from wacluster.db import nodes as nodes_db
from wacluster.db import settings as settings_db
from wacluster.db.messages import Idempotency, KeyHolder, Message
from wacluster.domain.health import NodeHealthInput, health
from wacluster.domain.sharding import route_hash
from wacluster.domain.webhook_destinations import Network
from wacluster.runtime.webapp.cloud_account import CloudAccount, is_same_number
from wacluster.runtime.webapp.destinations import DestinationRefused, check_literal_host
from wacluster.runtime.webapp.errors import ApiError, parse
from wacluster.runtime.webapp.batching import KeyTaken, ShardBatcher
from wacluster.runtime.webapp.meta import json_with_meta
from wacluster.runtime.webapp.routing import Router, ShardMapCache

REQUEST_DEADLINE = 10.0  # how long a send may wait for a failover before answering 503


class Handlers:
    def __init__(self, pool: AsyncConnectionPool, cache: ShardMapCache, router: Router,
                 session: aiohttp.ClientSession, gateway_url: str, webhook_allowed: list[Network] | None = None,
                 cloud: CloudAccount | None = None) -> None:
        """`cloud`: in cloud mode, the account is registered with the Cloud API, not the gateway."""
        self.pool, self.cache, self.router = pool, cache, router
        self.cloud = cloud
        self.webhook_allowed = webhook_allowed or []
        self.session = session
        self.gateway_url = gateway_url.rstrip("/")
        self.batcher = ShardBatcher(pool, router, REQUEST_DEADLINE)
        self.registered = False  # once registered, always registered: no query per message

    # --- health ------------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        async with self.pool.connection() as conn:
            nodes = await nodes_db.list_nodes(conn)
            registered = await account_db.registered_phone(conn) is not None
            settings = await settings_db.read_all(conn)
            serving = {row[0] for row in await (await conn.execute(
                "SELECT coreapp FROM shard_map WHERE coreapp IS NOT NULL AND NOT revoked "
                "AND lease_until > now()")).fetchall()}
            shard_count = (await (await conn.execute("SELECT count(*) FROM shard_map")).fetchone())[0]
        inputs = [NodeHealthInput(n.name, n.node_id, n.role, n.is_primary, n.gateway_status, n.db_heartbeat_age,
                                  n.stopping, n.error, n.name in serving) for n in nodes]
        stale = max(float(settings["db_unhealthy_after"]), 3 * float(settings["db_heartbeat_interval"]), 10.0)
        return web.json_response(health(inputs, registered, shard_count or int(settings["shards"]), stale))

    # --- account -------------------------------------------------------------------------------

    async def register(self, request: web.Request) -> web.Response:
        body = await parse(request, AccountRequest)
        vname = body.phone
        if self.cloud is not None:
            number = await self.cloud.number()
            if not is_same_number(body.phone, number):
                raise ApiError("bad_request", f"cc and phone_number are not the Cloud API phone number "
                                              f"{self.cloud.settings.phone_number_id}'s number")
            if body.pin is not None and number.verified:
                # Nothing left to verify: registered now with the two-step PIN, as on-premises
                # answers 201 for an account that needs no code.
                await self.cloud.register(body.pin)
                async with self.pool.connection() as conn:
                    await account_db.register(conn, body.phone)
                return web.json_response({}, status=201)
            vname = number.verified_name or body.phone
        else:
            await self._gateway("/v1/register", {"phone": body.phone})
        async with self.pool.connection() as conn:
            await settings_db.write(conn, {"pending_registration": body.phone})
        return web.json_response({"account": [{"vname": vname}]}, status=202)

    async def verify(self, request: web.Request) -> web.Response:
        body = await parse(request, VerifyRequest)
        async with self.pool.connection() as conn:
            phone = (await settings_db.read_all(conn)).get("pending_registration")
        if not phone:
            raise ApiError("bad_request", "no registration is pending: POST /v1/account first")
        if self.cloud is not None:
            await self.cloud.register(body.code)  # the code is the number's two-step PIN
        else:
            await self._gateway("/v1/verify", {"phone": phone, "code": body.code})
        async with self.pool.connection() as conn:
            await account_db.register(conn, phone)
        return web.json_response({}, status=201)

    async def set_shards(self, request: web.Request) -> web.Response:
        body = await parse(request, ShardsRequest)
        async with self.pool.connection() as conn:
            phone = await account_db.registered_phone(conn)
            if phone is None:
                raise ApiError("bad_request", "register the account before setting shards")
            if phone != f"+{body.cc}{body.phone_number}":
                raise ApiError("bad_request", "cc and phone_number do not match the registered account")
            coreapps = [n for n in await nodes_db.list_nodes(conn, Role.COREAPP) if not n.stopping]
            if len(coreapps) < body.shards:
                raise ApiError("bad_request", f"{body.shards} shards need at least {body.shards} coreapps; "
                                              f"{len(coreapps)} are running")
            await settings_db.write(conn, {"shards": body.shards})
        return web.json_response({}, status=201)

    async def _gateway(self, path: str, payload: dict) -> dict:
        try:
            async with self.session.post(self.gateway_url + path, json=payload,
                                         timeout=aiohttp.ClientTimeout(total=10)) as resp:
                data = await resp.json(content_type=None)
                if resp.status >= 400:
                    raise ApiError("bad_request", f"the WhatsApp server refused: {data.get('error', data)}")
                return data
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError("not_ready", f"the WhatsApp server is unreachable: {exc}")

    # --- settings ------------------------------------------------------------------------------

    async def get_settings(self, request: web.Request) -> web.Response:
        async with self.pool.connection() as conn:
            values = await settings_db.read_all(conn)
            phone = await account_db.registered_phone(conn)
        return web.json_response({"settings": {"application": _application_view(values, phone)}})

    async def patch_settings(self, request: web.Request) -> web.Response:
        body = await parse(request, ApplicationSettings)
        # Fields sent as null change nothing (as fields left out), except webhooks.url: null clears it.
        changes: dict[str, Any] = {k: v for k, v in body.model_dump(exclude_unset=True, exclude_none=True).items()
                                   if k not in ("webhooks", "garbagecollector_enable")}
        webhooks = body.webhooks
        if webhooks is not None and "url" in webhooks.model_fields_set:
            if webhooks.url:
                try:  # an address inside the cluster is refused now; a name when it is resolved
                    check_literal_host(webhooks.url.host or "", self.webhook_allowed)
                except DestinationRefused as refused:
                    raise ApiError("bad_request", f"webhooks.url: {refused}")
            changes["webhook_url"] = str(webhooks.url) if webhooks.url else None
        if webhooks is not None and webhooks.max_concurrent_requests is not None:
            changes["webhook_max_concurrent_requests"] = webhooks.max_concurrent_requests
        async with self.pool.connection() as conn:
            current = await settings_db.read_all(conn)
            # Partial objects update only the members they name.
            if webhooks is not None and webhooks.message is not None:
                changes["webhook_message"] = {**current["webhook_message"],
                                              **webhooks.message.model_dump(exclude_none=True)}
            if body.garbagecollector_enable is not None:
                changes["garbagecollector_enable"] = {**current["garbagecollector_enable"],
                                                      **body.garbagecollector_enable.model_dump(exclude_none=True)}
            merged = {**current, **changes}
            if float(merged["unhealthy_interval"]) < 2 * float(merged["heartbeat_interval"]):
                raise ApiError("bad_request", "unhealthy_interval must be at least twice heartbeat_interval")
            if float(merged["db_unhealthy_after"]) <= float(merged["db_heartbeat_interval"]):
                raise ApiError("bad_request", "db_unhealthy_after must be greater than db_heartbeat_interval")
            await settings_db.write(conn, changes)
            phone = await account_db.registered_phone(conn)
        return web.json_response({"settings": {"application": _application_view(merged, phone)}})

    # --- messages ------------------------------------------------------------------------------

    async def send_message(self, request: web.Request) -> web.Response:
        try:
            key = idempotency.parse_key(request.headers.getall(idempotency.HEADER, []))
        except idempotency.InvalidKey as exc:
            raise ApiError("bad_request", str(exc))
        body = await parse(request, OutgoingMessage)
        if not self.registered:
            async with self.pool.connection() as conn:
                if await account_db.registered_phone(conn) is None:
                    raise ApiError("not_ready", "the account is not registered yet")
            self.registered = True
        message_id = f"wamid.{uuid.uuid4().hex}"
        hashed = route_hash(body.to)
        shard = hashed % self.cache.shard_count
        content = body.model_dump(exclude_none=True)
        idem = Idempotency(key, idempotency.fingerprint(content)) if key is not None else None
        try:
            accepted = await self.batcher.submit(Message(message_id, body.to, shard, content, idem), hashed)
        except KeyTaken as taken:
            return _repeated(idem, taken.holder)
        if accepted:
            return json_with_meta({"messages": [{"id": message_id}]}, status=201)
        async with self.pool.connection() as conn:
            if not await messages_db.cancel(conn, message_id):
                return web.json_response({"messages": [{"id": message_id}]}, status=201)
        raise ApiError("not_ready", f"shard {shard} has no connected coreapp right now; retry shortly",
                       headers={"Retry-After": "2"})


def _repeated(idem: Idempotency, holder: KeyHolder) -> web.Response:
    """The answer to a request whose Idempotency-Key already stored a message (db/messages.py has
    the key's life): another body is an error; the same one gets the first request's answer once
    that is settled. While the holder is queued its request may still end in 503 (withdrawn, key
    freed), so it is 409 and the client retries, rather than this request waiting here: the first
    request may be in another webapp, or in one that died (then the owner's backlog scan claims
    the row within seconds), and polling the row would hold a connection for up to its deadline."""
    if holder.fingerprint != idem.fingerprint:
        raise ApiError("key_reused", f"Idempotency-Key {idem.key!r} was already used for another request "
                                     f"(message {holder.id}); send a new message with a new key")
    if holder.status == "queued":
        raise ApiError("key_in_flight", f"the request that first sent Idempotency-Key {idem.key!r} is still "
                                        "in progress; retry it shortly", headers={"Retry-After": "1"})
    return web.json_response({"messages": [{"id": holder.id}]}, status=201)


def _application_view(values: dict[str, Any], phone: str | None) -> dict[str, Any]:
    """The on-premises application settings, wacluster's database heartbeat and the shard count."""
    view = {k: values[k] for k in ("heartbeat_interval", "unhealthy_interval", "db_heartbeat_interval",
                                   "db_unhealthy_after", *settings_db.ONPREM_KEYS)}
    view["webhooks"] = {"url": values.get("webhook_url"),
                        "max_concurrent_requests": values["webhook_max_concurrent_requests"],
                        "message": values["webhook_message"]}
    view["shards"] = values.get("shards")
    if phone:
        view["wa_id"] = phone.lstrip("+")
    return view

