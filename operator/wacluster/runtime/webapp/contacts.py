"""POST /v1/contacts: is a phone number on WhatsApp, and what is its WhatsApp id. The WhatsApp
server decides; answers are cached in PostgreSQL (db/contacts.py) for CHECK_EXPIRY, so every
webapp answers a recently checked number without asking again, unless `force_check`.

`blocking: wait` asks the server for the unknown numbers before answering. `no_wait` answers them
`processing` and queues them for `run`, a long-lived worker under the webapp's supervisor, which
checks them and caches the result for the next call. The queue is bounded: when it is full, a
no_wait request is checked inline, which slows that client down instead of piling up work.

In cloud mode there is nothing to ask: the Cloud API has no contacts endpoint, and Meta's migration
guide has sends go to phone numbers directly. Every well-formed number is answered `valid` with
its digits as `wa_id`, at once, and nothing is cached; whether it is on WhatsApp shows only when a
send to it fails (131026, a `failed` status webhook)."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from wacluster.api.rest import ContactsRequest
from wacluster.db import contacts as contacts_db
from wacluster.db.contacts import Checked
from wacluster.domain.contacts import CHECK_EXPIRY, normalise_number
from wacluster.runtime.webapp.errors import parse

log = logging.getLogger("wacluster.webapp")

QUEUED_CHECKS = 256  # no_wait requests waiting for the worker
GATEWAY_TIMEOUT = 10.0


class ContactChecks:
    def __init__(self, pool: AsyncConnectionPool, session: aiohttp.ClientSession, gateway_url: str,
                 cloud: bool = False) -> None:
        self.pool, self.session, self.cloud = pool, session, cloud
        self.gateway_url = gateway_url.rstrip("/")
        self.queue: asyncio.Queue[list[str]] = asyncio.Queue(QUEUED_CHECKS)
        # Numbers queued or being checked: a no_wait repeated before the answer is cached queues
        # nothing more, so polling a number does not ask the server about it again and again.
        self.pending: set[str] = set()

    async def check(self, request: web.Request) -> web.Response:
        body = await parse(request, ContactsRequest)
        numbers = [normalise_number(given) for given in body.contacts]
        if self.cloud:
            known = {n: Checked(n, "valid", n) for n in numbers if n}
            return web.json_response({"contacts": [_answer(given, number, known, set())
                                                   for given, number in zip(body.contacts, numbers)]})
        wanted = sorted({n for n in numbers if n})
        # Taken before the cache is read: a number pending now is either still being checked or
        # was recorded while we read, and in neither case needs queueing again.
        pending = self.pending & set(wanted)
        known: dict[str, Checked] = {}
        if wanted and not body.force_check:
            async with self.pool.connection() as conn:
                known = await contacts_db.fresh(conn, wanted, CHECK_EXPIRY)
        unknown = [n for n in wanted if n not in known]
        failed: set[str] = set()
        if unknown and (body.blocking == "wait" or self.queue.full()):
            known.update(await self._ask_and_record(unknown))
            failed = set(unknown) - set(known)
        elif fresh := [n for n in unknown if n not in pending and n not in self.pending]:
            self.pending.update(fresh)
            self.queue.put_nowait(fresh)
        answers = [_answer(given, number, known, failed) for given, number in zip(body.contacts, numbers)]
        return web.json_response({"contacts": answers})

    async def run(self) -> None:
        """Check what no_wait requests queued, one request's numbers at a time (supervised)."""
        while True:
            numbers = await self.queue.get()
            try:
                await self._ask_and_record(numbers)
            finally:  # recorded (or failed): a later no_wait reads the cache or queues it again
                self.pending.difference_update(numbers)

    async def _ask_and_record(self, numbers: list[str]) -> dict[str, Checked]:
        """Ask the WhatsApp server about `numbers` and cache the answers; a number it did not
        answer for (unreachable, or a malformed answer) is missing from the result."""
        try:
            async with self.session.post(f"{self.gateway_url}/v1/contacts", json={"contacts": numbers},
                                         timeout=aiohttp.ClientTimeout(total=GATEWAY_TIMEOUT)) as resp:
                data = await resp.json(content_type=None)
                if resp.status >= 400:
                    raise ValueError(f"HTTP {resp.status}: {data}")
            results = [Checked(item["number"], item["status"], item.get("wa_id")) for item in data["contacts"]
                       if item.get("number") in numbers and item.get("status") in ("valid", "invalid")]
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            log.warning("checking %d contact(s) failed: the WhatsApp server: %s", len(numbers), exc)
            return {}
        async with self.pool.connection() as conn:
            await contacts_db.record(conn, results)
        return {r.number: r for r in results}


def _answer(given: str, number: str | None, known: dict[str, Checked], failed: set[str]) -> dict:
    """One entry of the answer, in the on-premises shape: wa_id only for a valid number."""
    if number is None:
        return {"input": given, "status": "invalid"}
    if number in failed:
        return {"input": given, "status": "failed"}
    checked = known.get(number)
    if checked is None:
        return {"input": given, "status": "processing"}
    if checked.status == "valid":
        return {"input": given, "status": "valid", "wa_id": checked.wa_id or number}
    return {"input": given, "status": "invalid"}
