"""POST /v1/settings/backup and /v1/settings/restore: the settings, profile and webhook CA
(db/settings_backup.py says what is in and what is not) as one password-encrypted blob
(crypto/settings_backup.py), and back. ADMIN role only (domain/access.py: changes under
/v1/settings). A wrong password is a 400 that says so; nothing is restored then."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from wacluster.api.settings_backup import RESTORE_MAX_BYTES, BackupRequest, RestoreRequest
from wacluster.crypto import settings_backup as sealing
from wacluster.db import settings_backup as backup_db
from wacluster.runtime.webapp.errors import ApiError, parse


class SettingsBackup:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        # The key derivation takes 32 MiB and a tenth of a second: one at a time, off the event loop.
        self.deriving = asyncio.Semaphore(1)

    async def backup(self, request: web.Request) -> web.Response:
        body = await parse(request, BackupRequest)
        async with self.pool.connection() as conn:
            content = await backup_db.snapshot(conn)
        plaintext = json.dumps(content, separators=(",", ":")).encode()
        async with self.deriving:
            data = await asyncio.to_thread(sealing.seal, plaintext, body.password)
        return web.json_response({"settings": {"data": data}})

    async def restore(self, request: web.Request) -> web.Response:
        body = await parse(request, RestoreRequest, limit=RESTORE_MAX_BYTES)
        async with self.deriving:
            try:
                plaintext = await asyncio.to_thread(sealing.open_sealed, body.data, body.password)
            except sealing.BackupUnreadable as exc:
                raise ApiError("bad_request", f"data: {exc}; send settings.data of a POST /v1/settings/backup answer")
            except sealing.WrongPassword as exc:
                raise ApiError("bad_request", f"password: {exc}; use the password the backup was made with")
        content = json.loads(plaintext)
        problem = backup_db.problem(content)
        if problem:
            raise ApiError("bad_request", f"data: {problem}")
        async with self.pool.connection() as conn:
            await backup_db.restore(conn, content)
        return web.json_response({})

