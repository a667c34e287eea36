"""Login with the admin credentials; bearer tokens stored in the database so every webapp accepts them."""

from __future__ import annotations

import base64
import hmac
import secrets
import time

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from wacluster.db import tokens as tokens_db
from wacluster.runtime.webapp.errors import ApiError

PUBLIC_PATHS = {"/v1/users/login", "/v1/openapi.json"}
CACHE_SECONDS = 10.0


class Auth:
    def __init__(self, pool: AsyncConnectionPool, username: str, password: str, token_ttl: float) -> None:
        self.pool = pool
        self.username, self.password = username, password
        self.token_ttl = token_ttl
        self._cache: dict[str, float] = {}  # token digest -> monotonic time until which it is trusted

    async def login(self, request: web.Request) -> web.Response:
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
        if not (user_ok & password_ok):
            raise ApiError("unauthorized", "wrong user name or password")
        token = secrets.token_urlsafe(32)
        async with self.pool.connection() as conn:
            expires = await tokens_db.store(conn, token, self.username, self.token_ttl)
        return web.json_response({"users": [{"token": token, "expires_after": expires.isoformat()}]})

    async def check(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise ApiError("unauthorized", "this endpoint needs `Authorization: Bearer <token>` from POST /v1/users/login")
        token = header[7:].strip()
        key = tokens_db.digest(token)
        now = time.monotonic()
        if self._cache.get(key, 0) > now:
            return
        async with self.pool.connection() as conn:
            left = await tokens_db.seconds_left(conn, token)
        if left is None:
            self._cache.pop(key, None)
            raise ApiError("unauthorized", "the token is unknown or expired; log in again")
        self._cache[key] = now + min(CACHE_SECONDS, left)

    def middleware(self):
        @web.middleware
        async def require_token(request: web.Request, handler):
            if request.path not in PUBLIC_PATHS:
                await self.check(request)
            return await handler(request)
        return require_token
