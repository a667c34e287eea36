"""The operator's settings file (its ConfigMap: spec.monitoring, spec.shards) into the database's
`settings`, by the primary, whenever the file changes."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from wacluster.db import settings as settings_db

log = logging.getLogger("wacluster.master")


class SettingsFile:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.synced: str | None = None  # the text last applied

    async def sync(self, conn) -> None:
        """The file wins whenever it changes; a PATCH through the API wins until it does."""
        if not self.path or not self.path.exists():
            return
        text = self.path.read_text()
        if text == self.synced:
            return
        changed = await settings_db.write(conn, json.loads(text))
        if changed:
            log.info("applied settings from %s: %s", self.path, settings_db.dumps(changed))
        self.synced = text
