"""The seed story both demos tell once a cluster answers: register, send, lose the connected
coreapp, send again, count what the sandbox received. Only how the coreapp is lost and how the
sandbox is asked differ between local processes and real pods; the callers pass those in."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from wacluster.runtime.sandbox import registration_code
from wacluster_testenv.apiclient import ApiClient
from wacluster_testenv.eventually import eventually


def show_health(api: ApiClient, title: str) -> None:
    print(f"\n  GET /v1/health  ({title})")
    for key, value in sorted(api.health().items()):
        if "errors" in value:
            error = value["errors"][0]
            print(f"    {key:<28} error {error['code']} {error['title']}")
        else:
            print(f"    {key:<28} {value['gateway_status']:<13} {value['role']}")
    print(flush=True)


def seed_story(api: ApiClient, say: Callable[[str], None], fail: Callable[[str], None],
               sandbox_counts: Callable[[], tuple[int, int, int]], timeout: float) -> None:
    """``fail(owner)`` stops the connected coreapp (and says how); ``sandbox_counts()`` returns
    (delivered, conflicts, bans)."""
    # Unregistered coreapps answer "Service not ready" until the account exists; what matters
    # first is that all four report and one master is primary.
    eventually(lambda: len(h := api.health()) == 4 and any(v.get("role") == "primary_master" for v in h.values()),
               timeout, what="every node reporting", details=lambda: str(api.health()))
    show_health(api, "before registration")
    say("registering the account (POST /v1/account, then /v1/account/verify with the sandbox's code)")
    api.request("POST", "/v1/account", {"cc": "1", "phone_number": "5550001111", "method": "sms", "cert": "ZGVtbw=="})
    api.request("POST", "/v1/account/verify", {"code": registration_code("+15550001111")})
    connected = lambda: [k for k, v in api.health().items()  # noqa: E731
                         if v.get("role") == "coreapp" and v.get("gateway_status") == "connected"]
    eventually(connected, timeout, what="a connected coreapp")
    show_health(api, "registered: one coreapp connected, the other a standby")

    reply = api.send_text("+15551234567", "Hello from wacluster")
    say(f"POST /v1/messages -> {reply.status} {json.dumps(reply.body)}")
    owner = connected()[0].split(":")[0]
    fail(owner)
    started = time.monotonic()
    eventually(lambda: [k for k in connected() if not k.startswith(owner + ":")], timeout,
               what="the standby connected")
    say(f"the standby took over shard 0 in {time.monotonic() - started:.1f}s (heartbeat 1 s, unhealthy 3 s)")
    show_health(api, "after the failover")
    reply = api.send_text("+15551234567", "Still here after the failover")
    say(f"POST /v1/messages -> {reply.status} {json.dumps(reply.body)}")
    # Delivery is asynchronous: wait until the sandbox holds both messages.
    eventually(lambda: sandbox_counts()[0] >= 2, timeout, what="both messages delivered")
    delivered, conflicts, bans = sandbox_counts()
    say(f"sandbox: {delivered} delivered, {conflicts} conflicts, {bans} bans")
