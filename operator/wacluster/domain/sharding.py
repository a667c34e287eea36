"""Which shard a recipient belongs to: a stable hash, the same in every process and release."""

from __future__ import annotations

import zlib

def route_hash(recipient: str) -> int:
    """CRC-32 of the recipient's digits: stable across processes (unlike Python's hash())."""
    digits = "".join(ch for ch in recipient if ch.isdigit()) or recipient
    return zlib.crc32(digits.encode())


def shard_of(recipient: str, shard_count: int) -> int:
    return route_hash(recipient) % shard_count
