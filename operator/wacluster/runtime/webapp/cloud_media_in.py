"""Inbound media of the Cloud API, served by GET /v1/media/{id} (issue 18): a Cloud webhook passes
a user's media through under the Cloud's media id (digits; ours are 32 hex), and the business
fetches it as on-premises. Resolved lazily, on the first GET: `GET /{version}/{media_id}` with the
access token names a short-lived URL, which is downloaded with the token too (bounded by the
documented size of its type, and in time), stored on the media volume under the id (checked to be
digits, so never a path) with a media row, and served from disk from then on; media retention
removes it like an upload. An id the Cloud API does not know (or no longer keeps) is the
on-premises 404 (1006), and remembered as unknown for `UNKNOWN_FOR` seconds (at most
`UNKNOWN_KEPT` ids, the oldest forgotten first), so a client polling an id, or a flood of made-up
ids, is answered here instead of becoming Graph API calls made with the account's token. A failed
download is 503 (1011), and the next GET tries again."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
import uuid
from collections import OrderedDict
from pathlib import Path

import aiohttp
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from wacluster.api.media_types import MEDIA_TYPES, size_limit
from wacluster.db import media as media_db
from wacluster.runtime.gateway import CloudSettings
from wacluster.runtime.webapp.errors import ApiError

log = logging.getLogger("wacluster.webapp")
# Meta's media ids are digits (about 16). Shorter than our 32-hex ids, so the two never overlap,
# and safe as a file name.
CLOUD_MEDIA_ID = re.compile(r"^[0-9]{1,30}$")
# Graph API call naming the URL, and the download itself (up to 100 MB of a document).
LOOKUP_TIMEOUT = aiohttp.ClientTimeout(total=15, sock_connect=5)
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=5, sock_read=30)
# Media of a type the API does not accept for upload is still a user's message: bounded by the
# largest documented kind instead of refused.
LARGEST_KIND = max(limit for _, limit in MEDIA_TYPES.values())
NOT_FOUND = "no media with that id"
# Meta's ids are its own and never reused: one it does not know now will not be known later (an
# inbound message names its media only once Meta has it). Bounded in time and count all the same.
UNKNOWN_FOR = 600.0
UNKNOWN_KEPT = 10_000


class CloudMediaIn:
    def __init__(self, pool: AsyncConnectionPool, directory: Path, settings: CloudSettings,
                 session: aiohttp.ClientSession, max_bytes: int) -> None:
        self.pool, self.directory, self.settings = pool, directory, settings
        self.session, self.max_bytes = session, max_bytes
        # One download per id at a time in this webapp: concurrent GETs wait for the first and
        # then find it stored. A lock lives while GETs of its id are under way.
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._unknown: OrderedDict[str, float] = OrderedDict()  # id -> monotonic time the Cloud API denied it

    async def serve(self, media_id: str) -> web.StreamResponse:
        """The media `media_id` (not one of our ids) from disk, fetched from the Cloud API first
        when it is not there yet."""
        if not CLOUD_MEDIA_ID.match(media_id) or self._known_unknown(media_id):
            raise ApiError("not_found", NOT_FOUND)
        content_type = await self._stored(media_id)
        if content_type is None:
            lock, users = self._locks.get(media_id, (asyncio.Lock(), 0))
            self._locks[media_id] = (lock, users + 1)
            try:
                async with lock:
                    content_type = await self._stored(media_id) or await self._fetch(media_id)
            finally:
                lock, users = self._locks[media_id]
                if users == 1:
                    del self._locks[media_id]
                else:
                    self._locks[media_id] = (lock, users - 1)
        return web.FileResponse(self.directory / media_id, headers={"Content-Type": content_type})

    def _known_unknown(self, media_id: str) -> bool:
        denied = self._unknown.get(media_id)
        if denied is None:
            return False
        if time.monotonic() - denied < UNKNOWN_FOR:
            return True
        del self._unknown[media_id]
        return False

    def _remember_unknown(self, media_id: str) -> None:
        self._unknown[media_id] = time.monotonic()
        self._unknown.move_to_end(media_id)
        while len(self._unknown) > UNKNOWN_KEPT:
            self._unknown.popitem(last=False)

    async def _stored(self, media_id: str) -> str | None:
        async with self.pool.connection() as conn:
            found = await media_db.get(conn, media_id)
        if found is None or not await asyncio.to_thread((self.directory / media_id).exists):
            return None
        return found[0]

    async def _fetch(self, media_id: str) -> str:
        """Resolve, download and store `media_id`; its content type."""
        url, content_type = await self._resolve(media_id)
        base_type = content_type.split(";")[0].strip().lower()
        limit = size_limit(base_type, self.max_bytes) or min(LARGEST_KIND, self.max_bytes)
        tmp = self.directory / f".{media_id}.{uuid.uuid4().hex}.partial"
        try:
            size = await self._download(media_id, url, tmp, limit)
            # Concurrent webapps may download the same id: the rename is atomic, the bytes equal.
            await asyncio.to_thread(os.replace, tmp, self.directory / media_id)
        finally:
            await asyncio.to_thread(tmp.unlink, missing_ok=True)
        async with self.pool.connection() as conn:
            await media_db.add_if_absent(conn, media_id, content_type, size)
        return content_type

    async def _resolve(self, media_id: str) -> tuple[str, str]:
        """The download URL and mime type the Cloud API names for `media_id`."""
        try:
            async with self.session.get(self.settings.url(media_id), headers=self.settings.auth(),
                                        timeout=LOOKUP_TIMEOUT) as resp:
                body = await resp.json(content_type=None) if resp.content_type == "application/json" else None
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            log.warning("Cloud media %s: the Graph API did not answer: %s", media_id, type(exc).__name__)
            raise ApiError("not_ready", "the Cloud API could not be reached for this media; retry later") from None
        # Meta answers an unknown or expired id 400 (code 100, 'does not exist'); 404 likewise.
        if status in (400, 404):
            self._remember_unknown(media_id)
            raise ApiError("not_found", NOT_FOUND)
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("url"), str) \
                or not isinstance(body.get("mime_type"), str):
            log.warning("Cloud media %s: the Graph API answered %s", media_id, status)
            raise ApiError("not_ready", f"the Cloud API answered {status} for this media; retry later")
        return body["url"], body["mime_type"]

    async def _download(self, media_id: str, url: str, tmp: Path, limit: int) -> int:
        """Write the bytes at `url` to `tmp`; their count. Over `limit` or failed: 503."""
        size = 0
        out = await asyncio.to_thread(open, tmp, "wb")
        try:
            async with self.session.get(url, headers=self.settings.auth(), timeout=DOWNLOAD_TIMEOUT) as resp:
                if resp.status != 200:
                    raise ApiError("not_ready", f"the Cloud API's media download answered {resp.status}; "
                                                "retry later")
                if resp.content_length is not None and resp.content_length > limit:
                    raise ApiError("not_ready", f"the media is larger than the {limit} bytes its type may have")
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > limit:
                        raise ApiError("not_ready", f"the media is larger than the {limit} bytes its type may have")
                    await asyncio.to_thread(out.write, chunk)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            log.warning("Cloud media %s: the download failed: %s", media_id, type(exc).__name__)
            raise ApiError("not_ready", "the media download from the Cloud API failed; retry later") from None
        finally:
            await asyncio.to_thread(out.close)
        if size == 0:
            raise ApiError("not_ready", "the Cloud API's media download was empty; retry later")
        return size
