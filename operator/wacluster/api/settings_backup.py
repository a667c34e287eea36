"""Bodies of POST /v1/settings/backup and /v1/settings/restore, as the on-premises reference
documents them: a password in, `{"settings": {"data"}}` out, and both back for a restore."""

from __future__ import annotations

from pydantic import Field, field_validator

from wacluster.api.rest import Meta
from wacluster.api.strict import Strict

# A restore carries the backup itself, photo included (5 MB, base64 twice over).
RESTORE_MAX_BYTES = 16 * 1024 * 1024


def _encodable(password: str) -> str:
    """JSON can carry a lone surrogate (\\ud800), which no byte encoding holds: refused by name."""
    try:
        password.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return password


class BackupRequest(Strict):
    password: str = Field(..., min_length=1, max_length=1024, description="Encrypts the backup; needed to restore it.")

    _password = field_validator("password")(_encodable)


class BackupData(Strict):
    data: str = Field(..., description="The encrypted backup: keep it with its password.")


class BackupResponse(Strict):
    settings: BackupData
    meta: Meta | None = None


class RestoreRequest(Strict):
    password: str = Field(..., min_length=1, max_length=1024, description="The password the backup was made with.")
    data: str = Field(..., min_length=1, max_length=RESTORE_MAX_BYTES,
                      description="settings.data of a POST /v1/settings/backup answer.")

    _password = field_validator("password")(_encodable)
