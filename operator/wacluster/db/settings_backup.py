"""What a settings backup holds (POST /v1/settings/backup) and how a restore puts it back: the
application settings set through the API, the profile (about, photo, business profile) and the
webhook CA certificate. Never users, passwords or tokens (the on-premises backup held none either),
nor messages or webhook events ("the backup does not back up messages or callbacks"). Left out too:
the settings the WhatsAppCluster spec owns (shards, intervals, lease timing, retention: the
operator copies them in, so a restored value would be overwritten) and the registration, which
belongs to the cluster and its gateway session, not to a file."""

from __future__ import annotations

import base64
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from wacluster.db import certificates as certificates_db
from wacluster.db import settings as settings_db

FORMAT = 1
SETTINGS_KEYS = ("webhook_url", "webhook_max_concurrent_requests", "webhook_message", *settings_db.ONPREM_KEYS)
CERTIFICATES = (certificates_db.WEBHOOKS_CA,)


async def snapshot(conn: AsyncConnection) -> dict[str, Any]:
    """Everything a backup holds, as JSON-ready values (the photo in base64)."""
    settings = await settings_db.read_all(conn)
    row = await (await conn.execute(
        "SELECT about, photo, photo_content_type, business FROM profile WHERE id = 1")).fetchone()
    about, photo, photo_type, business = row if row else (None, None, None, None)
    return {
        "format": FORMAT,
        "settings": {key: settings[key] for key in SETTINGS_KEYS},
        "profile": {"about": about, "photo": base64.b64encode(bytes(photo)).decode() if photo else None,
                    "photo_content_type": photo_type if photo else None, "business": business},
        "certificates": {name: await certificates_db.read(conn, name) for name in CERTIFICATES},
    }


def problem(content: Any) -> str | None:
    """Why `content` (a decrypted backup) cannot be restored, or None."""
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        return f"the backup's content is not format {FORMAT}"
    settings, profile, certificates = content.get("settings"), content.get("profile"), content.get("certificates")
    if not isinstance(settings, dict) or not set(settings) <= set(SETTINGS_KEYS):
        return "the backup's settings are not ones this release restores"
    if not isinstance(profile, dict) or not isinstance(certificates, dict) or not set(certificates) <= set(CERTIFICATES):
        return "the backup's profile or certificates are malformed"
    return None


async def restore(conn: AsyncConnection, content: dict[str, Any]) -> None:
    """Put a snapshot back, all of it or nothing (one transaction); the settings that change are
    announced like a PATCH, so every role applies them at once."""
    profile = content["profile"]
    photo = base64.b64decode(profile["photo"]) if profile.get("photo") else None
    async with conn.transaction():
        await settings_db.write(conn, content["settings"])
        await conn.execute(
            "INSERT INTO profile (id, about, photo, photo_content_type, business) VALUES (1, %s, %s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET about = EXCLUDED.about, photo = EXCLUDED.photo, "
            "photo_content_type = EXCLUDED.photo_content_type, business = EXCLUDED.business, updated_at = now()",
            (profile.get("about"), photo, profile.get("photo_content_type") if photo else None,
             Jsonb(profile["business"]) if profile.get("business") is not None else None))
        for name in CERTIFICATES:
            pem = content["certificates"].get(name)
            if pem:
                await certificates_db.write(conn, name, pem)
            else:
                await certificates_db.delete(conn, name)
