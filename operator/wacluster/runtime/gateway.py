"""What a coreapp needs from the WhatsApp server it sends through, whichever it is, and which one
its environment chooses.

Two drivers: the sandbox's websocket (`runtime/gateway_link.py`, also any server speaking that
protocol) and Meta's Cloud API over HTTPS (`runtime/coreapp/cloud_gateway.py`). The coreapp's
ownership, sender and backlog talk only to `Gateway`.
"""

from __future__ import annotations

import asyncio
import enum
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import aiohttp

from wacluster.api.interprocess import Env

DEFAULT_CLOUD_BASE_URL = "https://graph.facebook.com"
DEFAULT_CLOUD_API_VERSION = "v23.0"
DEFAULT_MESSAGES_PER_SECOND = 80  # Meta's default throughput per phone number


class Gateway(Protocol):
    """One serving session's way to the WhatsApp server for its shard."""

    # Why it can no longer be used (None while it can).
    closed_reason: str | None
    # True: the driver itself retries every message it was given until it is delivered or failed
    # for good, so the sender never times a batch out (the Cloud driver paces and retries). False:
    # a batch without an answer within the coreapp's ack timeout is lost and asked about again.
    settles_itself: bool
    # Why the server refuses the account for now (Cloud: token, permission, account state); the
    # session keeps its shard and sends nothing meanwhile. None: sending.
    paused_reason: str | None

    async def open(self) -> None:
        """Connect (sandbox) or check the credentials once (Cloud); raises when it cannot serve."""

    async def send(self, messages: list[dict]) -> asyncio.Future:
        """Hand over one batch of `{"id", "to", "body"}`; the future resolves with the ids the
        server accepted (and the driver settled), or fails with GatewayClosed."""

    async def already_delivered(self, ids: list[str]) -> set[str]:
        """Which of `ids`, claimed before by some session, were already sent and need no resend."""

    def abandon(self, future: asyncio.Future) -> None:
        """The caller stopped waiting for this batch's answer."""

    def stop_starting(self) -> None:
        """A planned handoff drains: finish what is on its way to the server, start nothing more;
        what was not started leaves its batch unsettled (still claimed, never sent: the successor
        sends it without waiting for anything)."""

    async def close(self) -> None:
        """Stop now (the coreapp fenced): nothing more is sent."""


class GatewayMode(enum.StrEnum):
    SANDBOX = "sandbox"
    CLOUD = "cloud"


@dataclass(frozen=True)
class CloudSettings:
    base_url: str
    api_version: str
    phone_number_id: str
    messages_per_second: float
    access_token: str = field(repr=False)  # never in a log line, a repr or an exception

    def url(self, *path: str) -> str:
        return "/".join((self.base_url.rstrip("/"), self.api_version, *path))

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def gateway_mode(env: dict[str, str] | None = None) -> GatewayMode:
    env = env if env is not None else dict(os.environ)
    value = env.get(Env.GATEWAY_MODE, GatewayMode.SANDBOX)
    try:
        return GatewayMode(value)
    except ValueError:
        raise SystemExit(f"{Env.GATEWAY_MODE} must be one of {', '.join(GatewayMode)}, not {value!r}") from None


def cloud_settings(env: dict[str, str] | None = None) -> CloudSettings:
    """The Cloud API settings from the environment; exits naming what is missing."""
    env = env if env is not None else dict(os.environ)
    missing = [name for name in (Env.CLOUD_PHONE_NUMBER_ID, Env.CLOUD_ACCESS_TOKEN) if not env.get(name)]
    if missing:
        raise SystemExit(f"{Env.GATEWAY_MODE}=cloud needs {' and '.join(missing)}")
    try:
        rate = float(env.get(Env.CLOUD_MESSAGES_PER_SECOND, DEFAULT_MESSAGES_PER_SECOND))
    except ValueError:
        raise SystemExit(f"{Env.CLOUD_MESSAGES_PER_SECOND} must be a number") from None
    if rate <= 0:
        raise SystemExit(f"{Env.CLOUD_MESSAGES_PER_SECOND} must be positive")
    return CloudSettings(base_url=env.get(Env.CLOUD_BASE_URL) or DEFAULT_CLOUD_BASE_URL,
                         api_version=env.get(Env.CLOUD_API_VERSION) or DEFAULT_CLOUD_API_VERSION,
                         phone_number_id=env[Env.CLOUD_PHONE_NUMBER_ID], messages_per_second=rate,
                         access_token=env[Env.CLOUD_ACCESS_TOKEN])


def sent_tracing() -> aiohttp.TraceConfig:
    """For a client session whose callers want to know when a request leaves: a request made with
    a callable `trace_request_ctx` has it called once its headers are written to the connection
    (after any wait for a connection to be opened)."""
    config = aiohttp.TraceConfig()

    async def headers_sent(session: aiohttp.ClientSession, context: Any, params: Any) -> None:
        notify = context.trace_request_ctx
        if callable(notify):
            notify()

    config.on_request_headers_sent.append(headers_sent)
    return config


async def graph_call(http: aiohttp.ClientSession, settings: CloudSettings, method: str, url: str,
                     timeout: float, on_sent: Callable[[], None] | None = None,
                     **request: Any) -> tuple[int | None, Any]:
    """One Graph API call with the access token: (HTTP status, the JSON body or None when it was
    not JSON); (None, None) when no answer came (connection error, timeout). `on_sent` is called
    when the request leaves, on a session made with `sent_tracing`."""
    try:
        async with http.request(method, url, headers=settings.auth(), trace_request_ctx=on_sent,
                                timeout=aiohttp.ClientTimeout(total=timeout), **request) as resp:
            try:
                return resp.status, await resp.json(content_type=None)
            except ValueError:
                return resp.status, None
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
        return None, None
