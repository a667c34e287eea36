"""The Cloud media id each of our media files got when the Cloud driver uploaded it for a phone
number (POST /{version}/{phone-number-id}/media), so one file is uploaded once, not once per
message. Meta keeps an upload 30 days; callers pass how old a cached id may be."""

from __future__ import annotations

from psycopg import AsyncConnection


async def cached(conn: AsyncConnection, phone_number_id: str, media_id: str, max_age_days: float) -> str | None:
    """The Cloud media id of our media for this phone number, if uploaded within `max_age_days`."""
    row = await (await conn.execute(
        "SELECT cloud_media_id FROM cloud_media WHERE media_id = %s AND phone_number_id = %s "
        "AND uploaded_at > now() - %s * interval '1 day'", (media_id, phone_number_id, max_age_days))).fetchone()
    return row[0] if row else None


async def remember(conn: AsyncConnection, phone_number_id: str, media_id: str, cloud_media_id: str) -> None:
    """Record an upload (the newest wins: an older id may be about to expire at Meta). Nothing is
    recorded when the media itself was deleted meanwhile."""
    await conn.execute(
        "INSERT INTO cloud_media (media_id, phone_number_id, cloud_media_id) "
        "SELECT id, %s, %s FROM media WHERE id = %s "
        "ON CONFLICT (media_id, phone_number_id) DO UPDATE "
        "SET cloud_media_id = EXCLUDED.cloud_media_id, uploaded_at = now()",
        (phone_number_id, cloud_media_id, media_id))
