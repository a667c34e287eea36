"""The Cloud media id each of our media files got when the Cloud driver uploaded it for a phone
number (POST /{version}/{phone-number-id}/media), so one file is uploaded once, not once per
message. Meta keeps an upload 30 days; callers pass how old a cached id may be.

While one coreapp uploads a file it holds a lease on it (schema 16): the owners of other shards
sending the same file at the same time wait for the cached id instead of uploading it again. A
lease ends when its holder releases it or at its `until` (a holder that died)."""

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


async def lease_upload(conn: AsyncConnection, phone_number_id: str, media_id: str, uploader: str,
                       seconds: float) -> bool:
    """Take the lease on uploading this media for this number for `seconds`, unless another
    uploader holds a lease that has not run out; whether this uploader holds it now."""
    row = await (await conn.execute(
        "INSERT INTO cloud_media_uploads (media_id, phone_number_id, uploader, until) "
        "SELECT id, %(number)s, %(uploader)s, now() + make_interval(secs => %(seconds)s) FROM media WHERE id = %(media)s "
        "ON CONFLICT (media_id, phone_number_id) DO UPDATE "
        "SET uploader = EXCLUDED.uploader, until = EXCLUDED.until "
        "WHERE cloud_media_uploads.until < now() OR cloud_media_uploads.uploader = EXCLUDED.uploader "
        "RETURNING 1", {"number": phone_number_id, "media": media_id, "uploader": uploader,
                        "seconds": seconds})).fetchone()
    return row is not None


async def release_upload(conn: AsyncConnection, phone_number_id: str, media_id: str, uploader: str) -> None:
    await conn.execute("DELETE FROM cloud_media_uploads WHERE media_id = %s AND phone_number_id = %s AND uploader = %s",
                       (media_id, phone_number_id, uploader))
