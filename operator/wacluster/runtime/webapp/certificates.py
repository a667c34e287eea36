"""GET/POST/DELETE /v1/certificates/webhooks/ca: the CA bundle (PEM, `Content-Type: text/plain`,
as the on-premises API takes it) that webhook deliveries verify receivers' certificates with, in
addition to the system CAs (webhook_trust.py). Stored in PostgreSQL, so every webapp delivers with
it from its next dispatch round: no restart, where the on-premises Coreapp needed one. ADMIN role
only, reading included, as the on-premises reference says (domain/access.py)."""

from __future__ import annotations

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from wacluster.crypto.ca_bundle import MAX_BYTES, InvalidBundle, normalised_bundle
from wacluster.db import certificates as certificates_db
from wacluster.runtime.webapp.errors import ApiError, read_limited


class Certificates:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def get_webhooks_ca(self, request: web.Request) -> web.Response:
        async with self.pool.connection() as conn:
            pem = await certificates_db.read(conn, certificates_db.WEBHOOKS_CA)
        if pem is None:
            raise ApiError("not_found", "no webhook CA certificate is set; POST one to /v1/certificates/webhooks/ca")
        return web.Response(text=pem, content_type="text/plain")

    async def set_webhooks_ca(self, request: web.Request) -> web.Response:
        try:
            body = await read_limited(request, MAX_BYTES)
        except ApiError:
            raise ApiError("too_large", f"a CA bundle is limited to {MAX_BYTES // 1024} KiB")
        if not body.strip():
            raise ApiError("missing", "the body is empty: send the CA certificate(s) in PEM")
        try:
            bundle = normalised_bundle(body)
        except InvalidBundle as exc:
            raise ApiError("bad_request", str(exc))
        async with self.pool.connection() as conn:
            await certificates_db.write(conn, certificates_db.WEBHOOKS_CA, bundle)
        return web.json_response({})

    async def delete_webhooks_ca(self, request: web.Request) -> web.Response:
        async with self.pool.connection() as conn:
            await certificates_db.delete(conn, certificates_db.WEBHOOKS_CA)
        return web.json_response({})
