"""Maintenance requests on a WhatsAppCluster, as the primary master reads them: which coreapps are
fenced (never promoted; an owner hands its shard off) and the switchover asked for (a planned
handoff of one shard, optionally to a chosen coreapp).

Both are declarative, so they survive a master failover without any memory of their own: a
switchover is satisfied once its shard changed owner at or after the time it was requested (and,
with `to`, the owner is that coreapp); a new primary judges the same request the same way.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Literal

SwitchoverState = Literal["InProgress", "Waiting", "Completed", "Refused"]

# A request that cannot be carried out at once (its successor not up yet, no standby) waits this
# long, judged again every decision; then it is refused for good, so an old request never moves
# a shard by surprise when its successor comes back days later.
SWITCHOVER_WINDOW = 120.0

# The reason a coreapp records when it releases its shard at the master's request.
MAINTENANCE_RELEASE = "maintenance: "


@dataclass(frozen=True)
class Switchover:
    shard: int
    to: str | None
    requested_at: dt.datetime
    raw: str            # the annotation as written: the answer names the request it is about


@dataclass(frozen=True)
class Invalid:
    raw: str
    problem: str


def parse_fenced(text: str | None) -> frozenset[str]:
    """`a, b` → {a, b}; empty or absent → nothing fenced."""
    return frozenset(part.strip() for part in (text or "").split(",") if part.strip())


def format_fenced(names: set[str] | frozenset[str]) -> str:
    return ",".join(sorted(names))


def parse_switchover(text: str | None) -> Switchover | Invalid | None:
    """The annotation's JSON: {"shard": 0, "to": "coreapp-name" (optional), "requestedAt": RFC 3339}."""
    if not text or not text.strip():
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        return Invalid(text, f"not JSON ({exc.msg})")
    if not isinstance(data, dict):
        return Invalid(text, 'not a JSON object; write {"shard": N, "to": "<coreapp>", "requestedAt": "<RFC 3339>"}')
    unknown = set(data) - {"shard", "to", "requestedAt"}
    if unknown:
        return Invalid(text, f"unknown field(s) {', '.join(sorted(unknown))}; allowed: shard, to, requestedAt")
    shard = data.get("shard")
    if not isinstance(shard, int) or isinstance(shard, bool) or shard < 0:
        return Invalid(text, "shard must be a shard number (an integer from 0)")
    to = data.get("to")
    if to is not None and (not isinstance(to, str) or not to):
        return Invalid(text, "to must be a coreapp's name")
    try:
        requested_at = parse_time(data.get("requestedAt"))
    except ValueError:
        return Invalid(text, "requestedAt must be an RFC 3339 time, e.g. 2026-11-24T12:00:00Z")
    return Switchover(shard, to, requested_at, text)


def switchover_request(shard: int, to: str | None, now: dt.datetime) -> str:
    """The annotation value for a switchover requested `now` (what `kubectl wac switchover` writes)."""
    body = {"shard": shard, "requestedAt": format_time(now)}
    if to:
        body["to"] = to
    return json.dumps(body, sort_keys=True)


def parse_time(value) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError("not a string")
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("no time zone")
    return parsed


def format_time(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
