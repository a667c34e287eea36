"""Media a message names by our id (POST /v1/media), made sendable through the Cloud API: the
file is uploaded once per phone number to `POST /{version}/{phone-number-id}/media` (multipart:
messaging_product, type, file, as Meta's reference has it) and the Cloud media id it gets is
cached in PostgreSQL (db/cloud_media.py). Meta keeps an upload 30 days; a cached id is reused for
`REUSE_DAYS`, so none is used on the day it may expire.

The bytes come from the shared media volume, mounted into coreapps as into webapps (the webapps
write it, runtime/webapp/media.py); its type from the media table. An upload refused by the Cloud
API is classified like a send (domain/cloud_errors.classify): retried, failed or pausing the
account. A media id with no file is a permanent failure of the message (1006, as GET /v1/media
answers for it).

Owners of different shards may send the same file at the same moment (a campaign with one image):
the first takes a lease on its upload in PostgreSQL (db/cloud_media.lease_upload) and the others
wait for its Cloud id instead of uploading the file again; a lease runs out with the upload's own
timeout, so a holder that died holds up nobody for longer."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path

import aiohttp
from psycopg_pool import AsyncConnectionPool

from wacluster.db import cloud_media as cloud_media_db
from wacluster.db import media as media_db
from wacluster.domain.cloud_errors import Action, OnPremError, Scope, SendFailure, classify
from wacluster.domain.cloud_messages import MESSAGING_PRODUCT
from wacluster.runtime.gateway import CloudSettings, graph_call

log = logging.getLogger("wacluster.coreapp")

REUSE_DAYS = 29            # Meta deletes an uploaded file after 30 days
UPLOAD_TIMEOUT = 120.0     # up to 16 MB (the largest media the webapp accepts) per upload
LEASE = UPLOAD_TIMEOUT + 10.0  # an upload lease outlives the upload it covers
LEASE_POLL = 0.5           # seconds between looks for the id another coreapp is uploading
MEDIA_ID = re.compile(r"^[0-9a-f]{32}$")  # the ids the webapp gives: never a path


class UploadFailed(Exception):
    """The Cloud API (or the media store) would not give this media a Cloud id now."""

    def __init__(self, failure: SendFailure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


def _missing(media_id: str) -> UploadFailed:
    return UploadFailed(SendFailure(
        Action.FAIL, Scope.MESSAGE, None, f"media {media_id} not found; message failed",
        OnPremError(1006, "Resource not found", f"media {media_id} not found: upload it again (POST /v1/media)")))


class CloudMedia:
    def __init__(self, http: aiohttp.ClientSession, settings: CloudSettings, pool: AsyncConnectionPool,
                 media_dir: Path, uploader: str) -> None:
        self.http, self.settings, self.pool, self.media_dir = http, settings, pool, media_dir
        self.uploader = uploader  # this coreapp's name, on its upload leases
        # Messages with the same media sent at once (to different recipients) share one upload:
        # the first uploads, the others wait for it and find its id in the cache.
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}

    async def cloud_ids(self, media_ids: set[str]) -> dict[str, str]:
        """Our media id -> its Cloud media id; raises UploadFailed for the first that has none."""
        return {media_id: await self._cloud_id(media_id) for media_id in sorted(media_ids)}

    async def _cloud_id(self, media_id: str) -> str:
        lock = self._locks.setdefault(media_id, asyncio.Lock())
        self._waiting[media_id] = self._waiting.get(media_id, 0) + 1
        try:
            async with lock:
                return await self._resolve(media_id)
        finally:
            self._waiting[media_id] -= 1
            if not self._waiting[media_id]:
                del self._waiting[media_id], self._locks[media_id]

    async def _resolve(self, media_id: str) -> str:
        if not MEDIA_ID.match(media_id):
            raise _missing(media_id)
        number = self.settings.phone_number_id
        waited_since: float | None = None
        while True:
            async with self.pool.connection() as conn:
                cached = await cloud_media_db.cached(conn, number, media_id, REUSE_DAYS)
                found = None if cached else await media_db.get(conn, media_id)
                leased = found is not None and await cloud_media_db.lease_upload(conn, number, media_id,
                                                                               self.uploader, LEASE)
            if cached:
                if waited_since is not None:
                    log.info("media %s: uploaded by another coreapp meanwhile (waited %.1fs)", media_id,
                             time.monotonic() - waited_since)
                return cached
            if found is None:
                raise _missing(media_id)
            if leased:
                break
            waited_since = waited_since or time.monotonic()
            await asyncio.sleep(LEASE_POLL)  # another coreapp is uploading it: its id comes soon
        try:
            path = self.media_dir / media_id
            try:
                data = await asyncio.to_thread(path.read_bytes)  # the volume may be NFS: off the event loop
            except FileNotFoundError:
                raise _missing(media_id) from None
            cloud_id = await self._upload(media_id, found[0], data)
            async with self.pool.connection() as conn:
                await cloud_media_db.remember(conn, number, media_id, cloud_id)
        finally:
            try:
                async with self.pool.connection() as conn:
                    await cloud_media_db.release_upload(conn, number, media_id, self.uploader)
            except Exception as exc:  # the lease runs out by itself
                log.warning("media %s: could not release the upload lease (%s)", media_id, exc)
        log.info("media %s uploaded to the Cloud API as %s (%d bytes)", media_id, cloud_id, len(data))
        return cloud_id

    async def _upload(self, media_id: str, content_type: str, data: bytes) -> str:
        form = aiohttp.FormData()
        form.add_field("messaging_product", MESSAGING_PRODUCT)
        form.add_field("type", content_type)
        form.add_field("file", data, filename=media_id, content_type=content_type)
        status, body = await graph_call(self.http, self.settings, "POST",
                                        self.settings.url(self.settings.phone_number_id, "media"),
                                        UPLOAD_TIMEOUT, data=form)
        cloud_id = body.get("id") if status == 200 and isinstance(body, dict) else None
        if isinstance(cloud_id, str) and cloud_id:
            return cloud_id
        failure = classify(status if status != 200 else None, body if isinstance(body, dict) else None)
        raise UploadFailed(SendFailure(failure.action, failure.scope, failure.cloud_code,
                                       f"uploading media {media_id}: {failure.reason}", failure.on_prem))
