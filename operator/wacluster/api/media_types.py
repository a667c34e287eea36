"""Which media the API accepts, and how large, by Content-Type: the types and per-kind limits the
WhatsApp Business API documents for media messages (images 5 MB; audio and video 16 MB; stickers
WebP, 500 KB animated; documents 100 MB). The webapp's --media-max-bytes caps every kind too."""

from __future__ import annotations

MB = 1024 * 1024

# Content-Type (without parameters) -> (kind, the largest accepted size in bytes)
MEDIA_TYPES: dict[str, tuple[str, int]] = {
    "image/jpeg": ("image", 5 * MB), "image/png": ("image", 5 * MB),
    "image/webp": ("sticker", 500 * 1024),
    "audio/aac": ("audio", 16 * MB), "audio/mp4": ("audio", 16 * MB), "audio/amr": ("audio", 16 * MB),
    "audio/mpeg": ("audio", 16 * MB), "audio/ogg": ("audio", 16 * MB),
    "video/mp4": ("video", 16 * MB), "video/3gpp": ("video", 16 * MB),
    **{t: ("document", 100 * MB) for t in (
        "application/pdf", "text/plain", "application/msword", "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation")},
}


def size_limit(content_type: str, cap: int) -> int | None:
    """The largest upload accepted for `content_type` under the webapp's `cap`; None when the type
    is not accepted at all."""
    known = MEDIA_TYPES.get(content_type)
    return None if known is None else min(known[1], cap)
