"""Password hashes for the API's users: scrypt (RFC 7914, OpenSSL's implementation through hashlib),
a memory-hard KDF, with a random salt per password. The stored form names its parameters, so
stronger ones can be adopted later without making existing hashes unreadable."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# One of the parameter sets OWASP's password storage cheat sheet gives for scrypt (N = 2^16, r = 8,
# p = 2): 64 MiB per hash, so callers bound how many run at once.
N, R, P = 2 ** 16, 8, 2
SALT_BYTES, KEY_BYTES = 16, 32
SCHEME = "scrypt"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * r * n + 2 ** 20,
                          dklen=KEY_BYTES)


def hash_password(password: str) -> str:
    """`scrypt$n$r$p$salt$key` (base64 parts)."""
    salt = secrets.token_bytes(SALT_BYTES)
    return f"{SCHEME}${N}${R}${P}${_b64(salt)}${_b64(_derive(password, salt, N, R, P))}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored` (a hash_password result); False for anything malformed."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != SCHEME:
            return False
        derived = _derive(password, base64.b64decode(salt), int(n), int(r), int(p))
        return hmac.compare_digest(derived, base64.b64decode(key))
    except (ValueError, TypeError):
        return False


# Checked against when the user name is unknown, so a wrong name costs the time a wrong password
# does (the derivation runs in full; no password matches an all-zero key).
DUMMY_HASH = f"{SCHEME}${N}${R}${P}${_b64(bytes(SALT_BYTES))}${_b64(bytes(KEY_BYTES))}"
