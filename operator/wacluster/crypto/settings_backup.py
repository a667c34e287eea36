"""Password encryption of a settings backup (POST /v1/settings/backup and /restore): the key is
derived from the password with scrypt and a random salt, the content sealed with AES-256-GCM and a
random nonce, so a changed byte or a wrong password is detected, never half-applied.

The blob is `base64(version | salt | nonce | ciphertext+tag)`; the version byte and the KDF
parameters it stands for are authenticated as associated data, so a later version can choose
stronger parameters and still open the blobs of this one."""

from __future__ import annotations

import base64
import binascii
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

VERSION = 1
# scrypt N = 2^15, r = 8, p = 1 (32 MiB, a tenth of a second): the interactive parameters of the
# scrypt paper; a backup is made by hand, so the cost is paid rarely, and callers run one at a time.
KDF = {1: (2 ** 15, 8, 1)}
SALT_BYTES, NONCE_BYTES, KEY_BYTES = 16, 12, 32
HEADER_BYTES = 1 + SALT_BYTES + NONCE_BYTES


class BackupUnreadable(ValueError):
    """The data is not a backup this release can read (not base64, unknown version, truncated)."""


class WrongPassword(ValueError):
    """The password does not open this backup, or the data was changed since it was made."""


def _key(password: str, salt: bytes, version: int) -> bytes:
    n, r, p = KDF[version]
    return Scrypt(salt=salt, length=KEY_BYTES, n=n, r=r, p=p).derive(password.encode())


def seal(plaintext: bytes, password: str) -> str:
    """The encrypted backup of `plaintext`, as the text the API returns in `settings.data`."""
    salt, nonce = secrets.token_bytes(SALT_BYTES), secrets.token_bytes(NONCE_BYTES)
    header = bytes([VERSION]) + salt + nonce
    sealed = AESGCM(_key(password, salt, VERSION)).encrypt(nonce, plaintext, header)
    return base64.b64encode(header + sealed).decode()


def open_sealed(data: str, password: str) -> bytes:
    """The plaintext of a `seal` result. Raises BackupUnreadable or WrongPassword."""
    try:
        raw = base64.b64decode(data.encode(), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise BackupUnreadable("data is not a backup: it is not base64") from None
    if len(raw) <= HEADER_BYTES + 16:  # the GCM tag alone is 16 bytes
        raise BackupUnreadable("data is not a backup: it is too short")
    version = raw[0]
    if version not in KDF:
        raise BackupUnreadable(f"data is a backup of an unknown format (version {version})")
    header, sealed = raw[:HEADER_BYTES], raw[HEADER_BYTES:]
    salt, nonce = header[1:1 + SALT_BYTES], header[1 + SALT_BYTES:]
    try:
        return AESGCM(_key(password, salt, version)).decrypt(nonce, sealed, header)
    except InvalidTag:
        raise WrongPassword("the password does not open this backup (or the data was changed)") from None
