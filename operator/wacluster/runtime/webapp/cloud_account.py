"""The account endpoints in cloud mode: the Cloud API's phone number and its registration.

Meta's migration from on-premises to the Cloud API keeps the number's ownership check (the code by
SMS or voice) in WhatsApp Manager and registers the number with one call,
`POST /{version}/{phone-number-id}/register` (`messaging_product`, `pin`: the number's two-step
verification PIN, which the first registration sets). The on-premises two steps map onto it:

- `POST /v1/account` reads the number from the Cloud API (`GET /{version}/{phone-number-id}`) and
  checks it is the one asked for; with a `pin` on a number already verified it registers at once
  (201, as on-premises answers an account that needs no code); otherwise it answers 202 with the
  Cloud's verified name and the handler keeps the number pending.
- `POST /v1/account/verify` registers the pending number with its `code` as the PIN.

A refusal keeps the on-premises error shape (400, 1009) with the Cloud error in its details; the
Graph API unreachable is 503 (1011), as the sandbox unreachable is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

from wacluster.runtime.gateway import CloudSettings, GatewayMode, cloud_settings, gateway_mode, graph_call
from wacluster.runtime.webapp.errors import ApiError

CLOUD_TIMEOUT = 10.0


@dataclass(frozen=True)
class CloudNumber:
    display_phone_number: str   # digits, as the Cloud API gives them
    verified_name: str
    code_verification_status: str  # VERIFIED | NOT_VERIFIED | EXPIRED

    @property
    def verified(self) -> bool:
        return self.code_verification_status == "VERIFIED"


class CloudAccount:
    def __init__(self, session: aiohttp.ClientSession, settings: CloudSettings) -> None:
        self.session, self.settings = session, settings

    async def number(self) -> CloudNumber:
        data = await self._call("GET", self.settings.url(self.settings.phone_number_id))
        return CloudNumber(_digits(str(data.get("display_phone_number", ""))), str(data.get("verified_name", "")),
                           str(data.get("code_verification_status", "")))

    async def register(self, pin: str) -> None:
        await self._call("POST", self.settings.url(self.settings.phone_number_id, "register"),
                         {"messaging_product": "whatsapp", "pin": pin})

    async def _call(self, method: str, url: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        status, data = await graph_call(self.session, self.settings, method, url, CLOUD_TIMEOUT, json=payload)
        if status is None:
            raise ApiError("not_ready", "the Cloud API is unreachable (no answer)")
        if not isinstance(data, dict):
            raise ApiError("not_ready", f"the Cloud API answered HTTP {status} without a JSON object")
        if status >= 400 or "error" in data:
            raise ApiError("bad_request", f"the Cloud API refused: {_describe(data.get('error'))}")
        return data


def is_same_number(phone: str, number: CloudNumber) -> bool:
    """`phone` (+<cc><number>) is the Cloud account's number."""
    return _digits(phone) == number.display_phone_number


def cloud_account_from_env(session: aiohttp.ClientSession) -> CloudAccount | None:
    """None unless the gateway mode (Env.GATEWAY_MODE) is cloud; exits naming what cloud mode misses."""
    if gateway_mode() != GatewayMode.CLOUD:
        return None
    return CloudAccount(session, cloud_settings())


def _describe(error: Any) -> str:
    """A Cloud error object as `(#code) message: details`, for the on-premises error's details."""
    if not isinstance(error, dict):
        return "no error object"
    details = (error.get("error_data") or {}).get("details") if isinstance(error.get("error_data"), dict) else None
    text = f"(#{error.get('code')}) {error.get('message', '')}"
    return f"{text}: {details}" if details else text


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())
