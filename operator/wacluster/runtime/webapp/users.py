"""The users endpoints (/v1/users, /v1/users/{username}, /v1/users/logout), the login of users other
than the built-in admin, and the role check every request passes (domain/access.py).

The built-in admin's password is the cluster's admin Secret, which the operator generates and the
demo, the harness and every client of the cluster log in with; it is never stored here and never
forced to change. A user created through the API must set its own password on its first login
(`new_password`), as the on-premises API required of its default admin. Passwords are stored as
scrypt hashes (crypto/passwords.py); hashing runs in worker threads, a few at a time, since each
takes 64 MiB and a noticeable fraction of a second."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from wacluster.api.users import CreateUser, UpdateUser, UserRole
from wacluster.crypto.passwords import DUMMY_HASH, hash_password, verify_password
from wacluster.db import users as users_db
from wacluster.domain.access import needs_admin
from wacluster.runtime.webapp.auth import Auth
from wacluster.runtime.webapp.errors import ApiError, parse

HASHES_AT_ONCE = 2
ROLE_CACHE_SECONDS = 10.0


class Users:
    def __init__(self, pool: AsyncConnectionPool, auth: Auth) -> None:
        self.pool, self.auth = pool, auth
        self.admin = auth.username
        self._hashing = asyncio.Semaphore(HASHES_AT_ONCE)
        self._roles: dict[str, tuple[float, str | None]] = {}  # username -> (trusted until, role)
        auth.users = self

    async def _hash(self, password: str) -> str:
        async with self._hashing:
            return await asyncio.to_thread(hash_password, password)

    async def _verify(self, password: str, stored: str) -> bool:
        async with self._hashing:
            return await asyncio.to_thread(verify_password, password, stored)

    # --- login (called by Auth for every user name but the admin's) ---------------------------

    async def log_in(self, user: bytes, password: bytes, new_password: str | None) -> str:
        """The user's name when the credentials are right (and, on a first login, a new password
        was given and stored); else an ApiError. An unknown name costs the time a wrong password does."""
        try:
            username, secret = user.decode(), password.decode()
        except UnicodeDecodeError:
            raise ApiError("unauthorized", "wrong user name or password")
        async with self.pool.connection() as conn:
            stored = await users_db.get(conn, username)
        ok = await self._verify(secret, stored.password_hash if stored else DUMMY_HASH)
        if stored is None or not ok:
            raise ApiError("unauthorized", "wrong user name or password")
        if new_password is None:
            if stored.must_change_password:
                raise ApiError("missing", "new_password: this is the first login of this user; send "
                                          '{"new_password": "..."} with it to set the password from now on')
            return username
        hashed = await self._hash(new_password)
        async with self.pool.connection() as conn:
            await users_db.set_password(conn, username, hashed)
        self.auth.forget_user(username)
        return username

    # --- the role check ------------------------------------------------------------------------

    async def role_of(self, username: str) -> str | None:
        if username == self.admin:
            return UserRole.ADMIN.value
        now = time.monotonic()
        until, role = self._roles.get(username, (0.0, None))
        if until > now:
            return role
        async with self.pool.connection() as conn:
            stored = await users_db.get(conn, username)
        role = stored.role if stored else None
        self._roles[username] = (now + ROLE_CACHE_SECONDS, role)
        return role

    def middleware(self):
        """Refuses (403, code 1005) what the caller's role may not do; runs after Auth's."""
        @web.middleware
        async def authorize(request: web.Request, handler):
            username = request.get("username")
            if username is not None and needs_admin(request.method, request.path, username):
                if await self.role_of(username) != UserRole.ADMIN.value:
                    raise ApiError("forbidden", f"{request.method} {request.path} needs the ADMIN role; "
                                                f"{username!r} has the USER role")
            return await handler(request)
        return authorize

    # --- endpoints -----------------------------------------------------------------------------

    async def create(self, request: web.Request) -> web.Response:
        body = await parse(request, CreateUser)
        if body.username == self.admin:
            raise ApiError("user_exists", "Unable to create user. Already exist?")
        hashed = await self._hash(body.password)
        try:
            async with self.pool.connection() as conn:
                await users_db.create(conn, body.username, hashed, body.role.value)
        except users_db.UserExists:
            raise ApiError("user_exists", "Unable to create user. Already exist?")
        return web.json_response({"users": [{"username": body.username}]}, status=201)

    async def read(self, request: web.Request) -> web.Response:
        username = request.match_info["username"]
        role = await self.role_of(username) if username == self.admin else None
        if role is None:
            async with self.pool.connection() as conn:
                stored = await users_db.get(conn, username)
            if stored is None:
                raise ApiError("not_found", f"no user {username!r}")
            role = stored.role
        return web.json_response({"users": [{"username": username, "role": role}]})

    async def update(self, request: web.Request) -> web.Response:
        username = request.match_info["username"]
        body = await parse(request, UpdateUser)
        if username == self.admin:
            raise ApiError("bad_request", f"the password of {self.admin!r} is the cluster's admin Secret "
                                          "(<cluster>-admin); change it there")
        hashed = await self._hash(body.password)
        async with self.pool.connection() as conn:
            if not await users_db.set_password(conn, username, hashed):
                raise ApiError("not_found", f"no user {username!r}")
        self.auth.forget_user(username)
        return web.json_response({"users": [{"username": username}]})

    async def delete(self, request: web.Request) -> web.Response:
        username = request.match_info["username"]
        if username == self.admin:
            raise ApiError("bad_request", f"{self.admin!r} is the built-in admin and cannot be deleted")
        async with self.pool.connection() as conn:
            if not await users_db.delete(conn, username):
                raise ApiError("not_found", f"no user {username!r}")
        self._roles.pop(username, None)
        self.auth.forget_user(username)
        return web.json_response({"users": [{"username": username}]})

    async def logout(self, request: web.Request) -> web.Response:
        """Revokes the token the request carries (Auth has checked it)."""
        token = request.headers["Authorization"][7:].strip()
        async with self.pool.connection() as conn:
            await users_db.revoke_token(conn, token)
        self.auth.forget(token)
        return web.json_response({})
