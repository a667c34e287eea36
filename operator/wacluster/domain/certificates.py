"""When the operator renews the API certificate it generated: at two thirds of its lifetime, as
cert-manager does by default, so a failed renewal leaves a third of the lifetime to notice."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

RENEW_AT_FRACTION = 2 / 3

CertificateAction = Literal["record", "renew", "keep"]


@dataclass(frozen=True)
class CertificateRecord:
    """What the status remembers of the generated certificate (the operator never reads Secrets)."""

    not_before: dt.datetime
    not_after: dt.datetime

    @property
    def renew_at(self) -> dt.datetime:
        return self.not_before + (self.not_after - self.not_before) * RENEW_AT_FRACTION

    def to_status(self) -> dict[str, str]:
        return {"notBefore": _iso(self.not_before), "notAfter": _iso(self.not_after), "renewAt": _iso(self.renew_at)}

    @classmethod
    def from_status(cls, status: dict | None) -> "CertificateRecord | None":
        if not status or "notBefore" not in status or "notAfter" not in status:
            return None
        return cls(_parse(status["notBefore"]), _parse(status["notAfter"]))


def certificate_action(record: CertificateRecord | None, created_now: bool, now: dt.datetime) -> CertificateAction:
    """`record` the certificate just created; `renew` when none is on record (a Secret from
    before records were kept: its expiry is unknown) or its renewal time has come; else `keep`."""
    if created_now:
        return "record"
    if record is None or now >= record.renew_at:
        return "renew"
    return "keep"


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
