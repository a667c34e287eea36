"""The `Idempotency-Key` request header of `POST /v1/messages` (IETF httpapi draft "The
Idempotency-Key HTTP Header Field"): what a valid key is, and the fingerprint that tells a retry of
a request from another request reusing its key.

The draft makes the value a Structured Field String (RFC 8941), `Idempotency-Key: "8e03978e-…"`;
most clients (and Stripe, whose header the draft describes) send the bare token. Both are accepted
and name the same key: `"abc"` and `abc` are one key.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

HEADER = "Idempotency-Key"
MAX_LENGTH = 255  # characters of the key itself; a UUID takes 36

# A bare key is visible ASCII; a quoted one (an RFC 8941 sf-string) may also hold spaces.
_VISIBLE = frozenset(chr(c) for c in range(0x21, 0x7F))
_SF_STRING = _VISIBLE | {" "}


class InvalidKey(ValueError):
    """The header is present but its value is not a key; the message says what to fix."""


def parse_key(values: list[str]) -> str | None:
    """The key carried by the request's `Idempotency-Key` header fields (all of them, in order),
    or None when there is none. Raises InvalidKey for an empty, over-long, repeated or
    non-printable one."""
    if not values:
        return None
    if len(values) > 1:
        raise InvalidKey(f"send at most one {HEADER} header (got {len(values)})")
    raw = values[0].strip(" \t")
    quoted = raw.startswith('"')
    key = _sf_string(raw) if quoted else raw
    if not key:
        raise InvalidKey(f"{HEADER} is empty: send a unique value such as a UUID")
    if len(key) > MAX_LENGTH:
        raise InvalidKey(f"{HEADER} is {len(key)} characters long; at most {MAX_LENGTH} are allowed")
    if not set(key) <= (_SF_STRING if quoted else _VISIBLE):
        raise InvalidKey(f"{HEADER} may hold only visible ASCII characters (and spaces inside quotes)")
    return key


def _sf_string(raw: str) -> str:
    """The content of an RFC 8941 sf-string: DQUOTE *( unescaped / "\\" ( DQUOTE / "\\" ) ) DQUOTE."""
    if len(raw) < 2 or not raw.endswith('"'):
        raise InvalidKey(f'{HEADER} starts with a double quote but is not a quoted string: "..."')
    out, chars, i = [], raw[1:-1], 0
    while i < len(chars):
        c = chars[i]
        if c == "\\":
            if i + 1 >= len(chars) or chars[i + 1] not in '"\\':
                raise InvalidKey(f'{HEADER}: inside quotes, a backslash may only escape " or \\')
            out.append(chars[i + 1])
            i += 2
            continue
        if c == '"':
            raise InvalidKey(f'{HEADER}: a double quote inside the quoted key must be escaped as \\"')
        out.append(c)
        i += 1
    return "".join(out)


def fingerprint(content: dict[str, Any]) -> bytes:
    """SHA-256 of the validated request as canonical JSON (sorted keys, no spaces).

    Canonical rather than the raw bytes: a client retrying through another library (or the same
    one after a restart) may serialise the same request with other key order, whitespace, escapes
    or with a default spelled out (`"recipient_type": "individual"`); that is still the same
    message, and answering it 422 would turn a safe retry into an error. What counts is what would
    be stored and sent, which is exactly the validated model's dump."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).digest()
