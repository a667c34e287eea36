"""The cluster's internal token: only the cluster's own masters and webapps may call a coreapp's
control port. The operator generates the token (the Secret `<cluster>-internal`, key `token`) and
passes it as Env.INTERNAL_TOKEN to masters, coreapps and webapps; each reads it once at start and
refuses to start without it. Callers send `Authorization: Bearer <token>`; the coreapp compares it
in constant time and answers anything else with a 401 in the API's error shape."""

from __future__ import annotations

import hmac
import logging
import os
import time
from typing import Callable, Mapping

from aiohttp import web
from prometheus_client import Counter

from wacluster.api.interprocess import Env
from wacluster.runtime.http_errors import error_response

MIN_LENGTH = 16              # the generated token has 32 characters; a shorter one was typed by hand
REFUSAL_LOG_EVERY = 60.0     # seconds: one log line per peer at most this often, however many refusals
REFUSAL_LOG_PEERS = 1024     # peers remembered at most (a scan from many addresses must not grow memory)
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="wacluster-control"'}

REFUSED = Counter("wacluster_coreapp_control_unauthorized_total",
                  "Calls to the control port refused for a missing or wrong internal token.")


def internal_token(env: Mapping[str, str] | None = None) -> str:
    """The token from the environment; RuntimeError (the role exits non-zero) when it is absent or
    unusable, since a role without it could not talk to the coreapps or would let anyone in."""
    env = env if env is not None else os.environ
    token = env.get(Env.INTERNAL_TOKEN, "").strip()  # a Secret made from a file often ends in a newline
    if not token:
        raise RuntimeError(f"{Env.INTERNAL_TOKEN} is not set (the operator passes it from the Secret "
                           "<cluster>-internal, key `token`; a local run must pass the same value to every "
                           "master, coreapp and webapp)")
    if len(token) < MIN_LENGTH or not all("!" <= ch <= "~" for ch in token):
        raise RuntimeError(f"{Env.INTERNAL_TOKEN} must be at least {MIN_LENGTH} printable ASCII characters "
                           f"without spaces (it has {len(token)}); delete the Secret <cluster>-internal and "
                           "the operator generates a new one")
    return token


def bearer(token: str) -> dict[str, str]:
    """The header a master or webapp sends on every call to a coreapp's control port."""
    return {"Authorization": f"Bearer {token}"}


class RefusalLog:
    """Logs refused calls at most once per `every` seconds per peer, with the count left unlogged
    meanwhile: a misconfigured or hostile caller retrying in a loop cannot flood the log."""

    def __init__(self, log: logging.Logger, every: float = REFUSAL_LOG_EVERY,
                 clock: Callable[[], float] = time.monotonic, max_peers: int = REFUSAL_LOG_PEERS) -> None:
        self.log, self.every, self.clock, self.max_peers = log, every, clock, max_peers
        self.peers: dict[str, tuple[float, int]] = {}  # peer -> (last logged at, refusals not logged since)

    def refused(self, peer: str, what: str, why: str) -> None:
        now = self.clock()
        logged_at, unlogged = self.peers.get(peer, (None, 0))
        if logged_at is not None and now - logged_at < self.every:
            self.peers[peer] = (logged_at, unlogged + 1)
            return
        if peer not in self.peers and len(self.peers) >= self.max_peers:
            self._forget(now)
        self.peers[peer] = (now, 0)
        more = f" ({unlogged} more from it since the last such line)" if unlogged else ""
        self.log.warning("refused %s from %s: %s%s; the control port takes only the cluster's masters and "
                         "webapps (logged at most every %gs per caller)", what, peer, why, more, self.every)

    def _forget(self, now: float) -> None:
        # Peers not logged within `every` would be logged again anyway; forget them first, all if need be.
        self.peers = {p: v for p, v in self.peers.items() if now - v[0] < self.every}
        if len(self.peers) >= self.max_peers:
            self.peers.clear()


def presented(request: web.Request) -> bytes | None:
    """The bearer token of `request` as bytes, or None when it carries none."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    try:
        return value.strip().encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return b"\x00"  # not a token we could have issued; still a wrong one, not a missing one


def require_token(token: str, refusals: RefusalLog) -> Callable:
    """Middleware: every request needs the cluster's token (no path is exempt: the kubelet's
    probes use the metrics port, never the control port)."""
    expected = token.encode()

    @web.middleware
    async def middleware(request: web.Request, handler):
        offered = presented(request)
        if offered is not None and hmac.compare_digest(offered, expected):
            return await handler(request)
        REFUSED.inc()
        why = "no bearer token" if offered is None else "a wrong bearer token"
        refusals.refused(request.remote or "an unknown peer", f"{request.method} {request.path}", why)
        details = ("the control port needs Authorization: Bearer <the cluster's internal token>"
                   if offered is None else "the bearer token is not this cluster's internal token")
        return error_response("unauthorized", f"{details} (Secret <cluster>-internal, key `token`)", CHALLENGE)

    return middleware
