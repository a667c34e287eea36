"""Media upload and download on the shared media volume. File names are ids we generate, never
anything from the request, so no path can escape the media directory."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from pathlib import Path

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from wacluster.api.media_types import MEDIA_TYPES, size_limit
from wacluster.db import media as media_db
from wacluster.runtime.webapp.errors import ApiError

ALLOWED_TYPES = set(MEDIA_TYPES)
MEDIA_ID = re.compile(r"^[0-9a-f]{32}$")


class Media:
    def __init__(self, pool: AsyncConnectionPool, directory: Path, max_bytes: int, cloud_in=None) -> None:
        """`cloud_in` (cloud_media_in.CloudMediaIn, cloud mode): serves the ids that are not ours."""
        self.pool, self.directory, self.max_bytes, self.cloud_in = pool, directory, max_bytes, cloud_in
        directory.mkdir(parents=True, exist_ok=True)

    async def upload(self, request: web.Request) -> web.Response:
        content_type = request.content_type
        limit = size_limit(content_type, self.max_bytes)
        if limit is None:
            raise ApiError("unsupported", f"Content-Type {content_type!r} is not accepted; use one of "
                                          f"{', '.join(sorted(ALLOWED_TYPES))}")
        too_large = f"{content_type} media is limited to {limit} bytes"
        if request.content_length is not None and request.content_length > limit:
            raise ApiError("too_large", too_large)
        media_id = uuid.uuid4().hex
        tmp = self.directory / f".{media_id}.partial"
        size = 0
        # File I/O in a worker thread: the media volume may be NFS, and a slow write must not
        # stall every other request on this event loop.
        out = await asyncio.to_thread(open, tmp, "wb")
        try:
            async for chunk in request.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise ApiError("too_large", too_large)
                await asyncio.to_thread(out.write, chunk)
            await asyncio.to_thread(out.close)
            if size == 0:
                raise ApiError("bad_request", "the media body is empty")
            await asyncio.to_thread(os.replace, tmp, self.directory / media_id)
        finally:
            await asyncio.to_thread(out.close)
            await asyncio.to_thread(tmp.unlink, missing_ok=True)
        async with self.pool.connection() as conn:
            await media_db.add(conn, media_id, content_type, size)
        return web.json_response({"media": [{"id": media_id}]}, status=201)

    async def download(self, request: web.Request) -> web.StreamResponse:
        media_id = request.match_info["media_id"]
        if not MEDIA_ID.match(media_id) and self.cloud_in is not None:
            return await self.cloud_in.serve(media_id)
        if not MEDIA_ID.match(media_id):
            raise ApiError("not_found", "no media with that id")
        async with self.pool.connection() as conn:
            found = await media_db.get(conn, media_id)
        path = self.directory / media_id
        if found is None or not await asyncio.to_thread(path.exists):
            raise ApiError("not_found", "no media with that id")
        return web.FileResponse(path, headers={"Content-Type": found[0]})

    async def delete(self, request: web.Request) -> web.Response:
        """The file first, then the row (as retention does): a row without its file is already 404."""
        media_id = request.match_info["media_id"]
        if not MEDIA_ID.match(media_id):
            raise ApiError("not_found", "no media with that id")
        async with self.pool.connection() as conn:
            found = await media_db.get(conn, media_id)
        if found is None:
            raise ApiError("not_found", "no media with that id")
        await asyncio.to_thread((self.directory / media_id).unlink, missing_ok=True)
        async with self.pool.connection() as conn:
            await media_db.remove(conn, [media_id])
        return web.json_response({})
