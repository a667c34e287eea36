"""`GET /v1/health` in the seeds' shape, computed from what the database says about each node.

    {"health": {"master1:b28d835cd579": {"gateway_status": "connected", "role": "primary_master"},
                "wacore1:35a5fabfc79d": {"errors": [{"code": 1011, "title": "Service not ready", ...}]}}}
"""

from __future__ import annotations

from dataclasses import dataclass

NOT_INSTANTIATED = "Wacore is not instantiated. Please check wacore log for details."


@dataclass(frozen=True)
class NodeHealthInput:
    name: str
    node_id: str
    role: str                 # master | coreapp
    is_primary: bool
    gateway_status: str       # what the coreapp reports: connected | disconnected | paused
    db_heartbeat_age: float
    stopping: bool
    error: str | None
    serving_shard: bool       # the shard map gives it a live, unrevoked shard


def not_ready(details: str) -> dict:
    return {"errors": [{"code": 1011, "title": "Service not ready", "details": details}]}


def health(nodes: list[NodeHealthInput], registered: bool, shard_count: int, stale_after: float) -> dict:
    out: dict[str, dict] = {}
    for node in nodes:
        key = f"{node.name}:{node.node_id}"
        paused = node.role == "coreapp" and node.gateway_status == "paused"  # its error says why
        if node.error and not paused:
            out[key] = not_ready(node.error)
        elif node.db_heartbeat_age > stale_after:
            out[key] = not_ready(f"{node.name} has not reported for {node.db_heartbeat_age:.0f}s")
        elif node.stopping:
            out[key] = not_ready(f"{node.name} is shutting down")
        elif node.role == "master":
            out[key] = _master(node, registered, shard_count)
        elif not registered:
            out[key] = not_ready(NOT_INSTANTIATED)
        elif paused and node.serving_shard:
            # It keeps its shard but the Cloud API refuses the account: nothing is sent until fixed.
            out[key] = {"gateway_status": "paused", "role": "coreapp",
                        **not_ready(node.error or "sending paused: the Cloud API refuses the account")}
        else:
            connected = node.serving_shard and node.gateway_status == "connected"
            out[key] = {"gateway_status": "connected" if connected else "disconnected", "role": "coreapp"}
    return {"health": out}


def _master(node: NodeHealthInput, registered: bool, shard_count: int) -> dict:
    role = "primary_master" if node.is_primary else "secondary_master"
    if not registered:
        # The seed: the primary reports "unregistered"; a secondary has no Wacore instance yet.
        return {"gateway_status": "unregistered", "role": role} if node.is_primary else not_ready(NOT_INSTANTIATED)
    # With more than one shard the primary master holds a connection of its own (seed 001).
    connected = node.is_primary and shard_count > 1
    return {"gateway_status": "connected" if connected else "disconnected", "role": role}
