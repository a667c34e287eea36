"""The endpoint Meta calls with the Cloud API's webhooks (the URL given to Meta as the app's
callback URL): the path in Env.CLOUD_WEBHOOK_PATH (spec.gateway.cloud.webhookPath, default
/cloud/webhook) on every webapp, behind the API Service. Served only when the app secret is set
(cloud mode); not behind the API's bearer tokens (Meta has none) but under its own checks:

- `GET` is Meta's verification request: `hub.mode=subscribe` and `hub.verify_token` equal to the
  configured verify token (constant-time) answer `hub.challenge` as text; anything else is 403.
- `POST` must carry `X-Hub-Signature-256: sha256=<hex>`, the HMAC-SHA256 of the raw body under
  the app secret (compared in constant time); without it or with a wrong one the answer is 401
  and nothing is stored. A signed body is split into its messages, statuses and errors
  (domain/cloud_inbound.py), stored in one statement (db/cloud_notifications.py) and only then
  answered 200: a webapp that dies after the 200 has lost nothing, any webapp relays the rows
  (cloud_relay.py). Meta's retries of a stored item are recognised by their key and stored once.
  A signed body that is not JSON is 400; items of other phone numbers or other fields are
  acknowledged and dropped."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from wacluster.api.interprocess import Env
from wacluster.db import cloud_notifications as cloud_db
from wacluster.domain.cloud_inbound import notifications
from wacluster.runtime.webapp.errors import ApiError, read_limited

log = logging.getLogger("wacluster.webapp")
DEFAULT_PATH = "/cloud/webhook"
SIGNATURE_HEADER = "X-Hub-Signature-256"
# Meta's webhook payloads are at most 3 MB.
BODY_LIMIT = 3 * 1024 * 1024
RECEIVED = Counter("wacluster_cloud_webhook_items_total",
                   "Items of Cloud API webhooks by result (stored, duplicate) and refused requests (refused).",
                   ["result"])


@dataclass(frozen=True)
class CloudWebhookSettings:
    path: str
    app_secret: bytes = field(repr=False)
    verify_token: str = field(repr=False)
    phone_number_id: str | None  # only its notifications are kept; None: every number of the app


def settings_from_env(env: dict[str, str] | None = None) -> CloudWebhookSettings | None:
    """The endpoint's settings; None when no app secret is set (no Cloud webhooks to receive).
    Exits naming what is wrong with the path."""
    env = env if env is not None else dict(os.environ)
    secret = env.get(Env.CLOUD_APP_SECRET, "")
    if not secret:
        return None
    path = env.get(Env.CLOUD_WEBHOOK_PATH) or DEFAULT_PATH
    if not path.startswith("/") or path.startswith("/v1/") or path in ("/", "/v1"):
        raise SystemExit(f"{Env.CLOUD_WEBHOOK_PATH} must be an absolute path outside /v1/, not {path!r}")
    return CloudWebhookSettings(path, secret.encode(), env.get(Env.CLOUD_VERIFY_TOKEN, ""),
                                env.get(Env.CLOUD_PHONE_NUMBER_ID) or None)


def signature(app_secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret, body, hashlib.sha256).hexdigest()


class CloudWebhooks:
    def __init__(self, pool: AsyncConnectionPool, settings: CloudWebhookSettings, stored=None) -> None:
        """`stored()` is called after new rows were stored (wakes this webapp's relay)."""
        self.pool, self.settings = pool, settings
        self.stored = stored or (lambda: None)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(self.settings.path, self.verify)
        app.router.add_post(self.settings.path, self.receive)

    async def verify(self, request: web.Request) -> web.Response:
        query = request.query
        token = query.get("hub.verify_token", "").encode("utf-8", "surrogateescape")
        # Both operands are always compared, so the time taken tells nothing about the token.
        token_ok = hmac.compare_digest(token, self.settings.verify_token.encode())
        if query.get("hub.mode") != "subscribe" or not self.settings.verify_token or not token_ok \
                or "hub.challenge" not in query:
            RECEIVED.labels(result="refused").inc()
            raise ApiError("forbidden", "verification needs hub.mode=subscribe, the configured hub.verify_token "
                                        "and hub.challenge")
        return web.Response(text=query["hub.challenge"], content_type="text/plain")

    async def receive(self, request: web.Request) -> web.Response:
        raw = await read_limited(request, BODY_LIMIT)
        given = request.headers.get(SIGNATURE_HEADER, "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, signature(self.settings.app_secret, raw).encode()):
            RECEIVED.labels(result="refused").inc()
            raise ApiError("unauthorized", f"{SIGNATURE_HEADER} is missing or is not the HMAC-SHA256 of the body "
                                           "under the app secret")
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError("bad_request", f"the body is not valid JSON: {exc}")
        items = notifications(payload, self.settings.phone_number_id)
        if items:
            async with self.pool.connection() as conn:
                new = await cloud_db.store(conn, items)
            RECEIVED.labels(result="stored").inc(new)
            RECEIVED.labels(result="duplicate").inc(len(items) - new)
            if new:
                self.stored()
        return web.Response(text="EVENT_RECEIVED", content_type="text/plain")
