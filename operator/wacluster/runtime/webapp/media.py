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

from wacluster.db import media as media_db
from wacluster.runtime.webapp.errors import ApiError

ALLOWED_TYPES = {
    "image/jpeg", "image/png", "image/webp", "application/pdf", "audio/ogg", "audio/mpeg", "audio/aac",
    "video/mp4", "text/plain",
}
MEDIA_ID = re.compile(r"^[0-9a-f]{32}$")


class Media:
    def __init__(self, pool: AsyncConnectionPool, directory: Path, max_bytes: int) -> None:
        self.pool, self.directory, self.max_bytes = pool, directory, max_bytes
        directory.mkdir(parents=True, exist_ok=True)

    async def upload(self, request: web.Request) -> web.Response:
        content_type = request.content_type
        if content_type not in ALLOWED_TYPES:
            raise ApiError("unsupported", f"Content-Type {content_type!r} is not accepted; use one of "
                                          f"{', '.join(sorted(ALLOWED_TYPES))}")
        if request.content_length is not None and request.content_length > self.max_bytes:
            raise ApiError("too_large", f"media is limited to {self.max_bytes} bytes")
        media_id = uuid.uuid4().hex
        tmp = self.directory / f".{media_id}.partial"
        size = 0
        # File I/O in a worker thread: the media volume may be NFS, and a slow write must not
        # stall every other request on this event loop.
        out = await asyncio.to_thread(open, tmp, "wb")
        try:
            async for chunk in request.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > self.max_bytes:
                    raise ApiError("too_large", f"media is limited to {self.max_bytes} bytes")
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
        if not MEDIA_ID.match(media_id):
            raise ApiError("not_found", "no media with that id")
        async with self.pool.connection() as conn:
            found = await media_db.get(conn, media_id)
        path = self.directory / media_id
        if found is None or not await asyncio.to_thread(path.exists):
            raise ApiError("not_found", "no media with that id")
        return web.FileResponse(path, headers={"Content-Type": found[0]})
