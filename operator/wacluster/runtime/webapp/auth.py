"""Login (the built-in admin, whose password is the admin Secret, or a user of runtime/webapp/users.py);
bearer tokens stored in the database so every webapp accepts them.

A token carries an HMAC of itself under a key derived from the admin password, which every webapp
of the cluster holds: a forged or random token is refused without a database query, so a flood
of them cannot starve the pool that authenticated requests need. The database still decides
expiry (and a password change invalidates every token)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import math
import secrets
import time

from aiohttp import web
from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from wacluster.db import tokens as tokens_db
from wacluster.domain.login_limit import FailedLogins
from wacluster.api.users import LoginRequest
from wacluster.runtime.webapp.errors import ApiError, parse

PUBLIC_PATHS = {"/v1/users/login", "/v1/openapi.json"}
CACHE_SECONDS = 10.0
MAC_BYTES = 16
# Tokens issued before they were signed are still looked up, but only this many at a time.
UNSIGNED_LOOKUPS_AT_ONCE = 2

TOKEN_LOOKUPS = Counter("wacluster_webapp_token_lookups_total",
                        "Bearer tokens looked up in the database, by kind (signed, unsigned).", ["kind"])
TOKENS_FORGED = Counter("wacluster_webapp_tokens_forged_total",
                                  "Bearer tokens refused without a database query: their signature is wrong.")


class Auth:
    def __init__(self, pool: AsyncConnectionPool, username: str, password: str, token_ttl: float) -> None:
        self.pool = pool
        self.username, self.password = username, password
        self.token_ttl = token_ttl
        # token digest -> (monotonic time until which it is trusted, its user)
        self._cache: dict[str, tuple[float, str]] = {}
        self.users = None  # the API's other users (runtime/webapp/users.py Users), when set
        self._key = hashlib.sha256(b"wacluster bearer token key\0" + password.encode()).digest()
        self._unsigned = asyncio.Semaphore(UNSIGNED_LOOKUPS_AT_ONCE)
        self.failed_logins = FailedLogins()
        # Paths served without a token: the public ones, and any with checks of their own (the
        # Cloud API's webhook endpoint, which Meta calls with a signature instead).
        self.public_paths = set(PUBLIC_PATHS)

    def _mac(self, nonce: str) -> str:
        return base64.urlsafe_b64encode(hmac.digest(self._key, nonce.encode(), "sha256")[:MAC_BYTES]).decode().rstrip("=")

    def issue(self) -> str:
        nonce = secrets.token_urlsafe(32)
        return f"{nonce}.{self._mac(nonce)}"

    def signature_valid(self, token: str) -> bool | None:
        """True or False for a signed token; None for one without a signature (issued earlier)."""
        nonce, dot, mac = token.rpartition(".")
        if not dot:
            return None
        return hmac.compare_digest(mac.encode(), self._mac(nonce).encode())

    async def login(self, request: web.Request) -> web.Response:
        client, now = request.remote or "unknown", time.monotonic()
        wait = self.failed_logins.retry_after(client, now)
        if wait > 0:
            seconds = str(math.ceil(wait))
            raise ApiError("too_many", f"too many failed logins from this client; retry in {seconds} s",
                           {"Retry-After": seconds})
        try:
            return await self._login(request)
        except ApiError:
            self.failed_logins.failed(client, now)
            raise

    async def _login(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            raise ApiError("unauthorized", "log in with HTTP Basic authentication (admin user name and password)")
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).partition(b":")
        except ValueError:
            raise ApiError("unauthorized", "the Basic credentials are not valid base64")
        # Bytes, not str: compare_digest refuses non-ASCII text. Both comparisons always run, so
        # the time taken does not tell whether the user name was right.
        user_ok = hmac.compare_digest(user, self.username.encode())
        password_ok = hmac.compare_digest(password, self.password.encode())
        body = await parse(request, LoginRequest)
        if user_ok & password_ok:
            if body.new_password is not None:
                raise ApiError("bad_request", f"new_password: the password of {self.username!r} is the cluster's "
                                              "admin Secret (<cluster>-admin); change it there")
            name = self.username
        elif self.users is not None and not user_ok:
            name = await self.users.log_in(user, password, body.new_password)
        else:
            raise ApiError("unauthorized", "wrong user name or password")
        token = self.issue()
        async with self.pool.connection() as conn:
            expires = await tokens_db.store(conn, token, name, self.token_ttl)
        return web.json_response({"users": [{"token": token, "expires_after": expires.isoformat()}]})

    async def check(self, request: web.Request) -> str:
        """The user the request's bearer token was issued to; a 401 when it has none that is valid."""
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise ApiError("unauthorized", "this endpoint needs `Authorization: Bearer <token>` from POST /v1/users/login")
        token = header[7:].strip()
        key = tokens_db.digest(token)
        now = time.monotonic()
        trusted_until, username = self._cache.get(key, (0.0, ""))
        if trusted_until > now:
            return username
        signed = self.signature_valid(token)
        if signed is False:
            TOKENS_FORGED.inc()
            raise ApiError("unauthorized", "the token is unknown or expired; log in again")
        if signed:
            left = await self._seconds_left(token, "signed")
        else:
            async with self._unsigned:
                left = await self._seconds_left(token, "unsigned")
        if left is None:
            self._cache.pop(key, None)
            raise ApiError("unauthorized", "the token is unknown or expired; log in again")
        seconds, username = left
        self._cache[key] = (now + min(CACHE_SECONDS, seconds), username)
        return username

    def forget(self, token: str) -> None:
        """Stop trusting a revoked token here at once (other webapps within CACHE_SECONDS)."""
        self._cache.pop(tokens_db.digest(token), None)

    def forget_user(self, username: str) -> None:
        """Stop trusting every token of a user whose tokens were revoked (password change, deletion)."""
        for key in [k for k, (_, holder) in self._cache.items() if holder == username]:
            del self._cache[key]

    async def _seconds_left(self, token: str, kind: str) -> tuple[float, str] | None:
        TOKEN_LOOKUPS.labels(kind=kind).inc()
        async with self.pool.connection() as conn:
            return await tokens_db.seconds_left(conn, token)

    def middleware(self):
        @web.middleware
        async def require_token(request: web.Request, handler):
            if request.path not in self.public_paths:
                request["username"] = await self.check(request)
            return await handler(request)
        return require_token
