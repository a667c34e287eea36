"""The account's profile endpoints: `about` (GET/PATCH /v1/settings/profile/about), the photo
(GET/POST/DELETE /v1/settings/profile/photo: raw JPEG or PNG bytes, as media are uploaded) and the
business profile (GET/POST /v1/settings/business/profile). Stored in PostgreSQL (db/profile.py),
so every webapp answers the same. Changing them needs the ADMIN role (domain/access.py)."""

from __future__ import annotations

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from wacluster.api.profile import PHOTO_MAX_BYTES, PHOTO_TYPES, AboutRequest, BusinessProfile
from wacluster.db import profile as profile_db
from wacluster.runtime.webapp.errors import ApiError, parse, read_limited

BUSINESS_FIELDS = {"address": "", "description": "", "email": "", "vertical": "", "websites": []}


class Profile:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def get_about(self, request: web.Request) -> web.Response:
        async with self.pool.connection() as conn:
            text = await profile_db.about(conn)
        return web.json_response({"settings": {"profile": {"about": {"text": text or ""}}}})

    async def set_about(self, request: web.Request) -> web.Response:
        body = await parse(request, AboutRequest)
        async with self.pool.connection() as conn:
            await profile_db.set_about(conn, body.text)
        return web.json_response({})

    async def get_photo(self, request: web.Request) -> web.Response:
        async with self.pool.connection() as conn:
            found = await profile_db.photo(conn)
        if found is None:
            raise ApiError("not_found", "no profile photo is set; POST one to /v1/settings/profile/photo")
        data, content_type = found
        return web.Response(body=data, content_type=content_type)

    async def set_photo(self, request: web.Request) -> web.Response:
        if request.content_type not in PHOTO_TYPES:
            raise ApiError("unsupported", f"Content-Type {request.content_type!r} is not accepted for the profile "
                                          f"photo; use {' or '.join(PHOTO_TYPES)}")
        try:
            data = await read_limited(request, PHOTO_MAX_BYTES)
        except ApiError:
            raise ApiError("too_large", f"the profile photo is limited to {PHOTO_MAX_BYTES} bytes")
        if not data:
            raise ApiError("missing", "the body is empty: send the photo's bytes")
        async with self.pool.connection() as conn:
            await profile_db.set_photo(conn, data, request.content_type)
        return web.json_response({})

    async def delete_photo(self, request: web.Request) -> web.Response:
        async with self.pool.connection() as conn:
            await profile_db.set_photo(conn, None, None)
        return web.json_response({})

    async def get_business(self, request: web.Request) -> web.Response:
        async with self.pool.connection() as conn:
            stored = await profile_db.business(conn) or {}
        return web.json_response({"settings": {"business": {"profile": {**BUSINESS_FIELDS, **stored}}}})

    async def set_business(self, request: web.Request) -> web.Response:
        """Fields left out keep their value; a field sent as null clears it."""
        body = await parse(request, BusinessProfile)
        async with self.pool.connection() as conn:
            await profile_db.merge_business(conn, body.model_dump(exclude_unset=True))
        return web.json_response({})
