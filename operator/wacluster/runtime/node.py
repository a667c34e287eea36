"""Identity and configuration every runtime role reads from its environment."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass

from wacluster import __version__
from wacluster.api.interprocess import Env, Port


@dataclass(frozen=True)
class NodeIdentity:
    name: str        # the pod name (the seeds' host name, e.g. wacore1)
    node_id: str     # random per process start (the seeds' container id)
    version: str
    address: str     # host:port of the control endpoint; "" for a master, which serves none

    @property
    def display(self) -> str:
        return f"{self.name}:{self.node_id}"


def identity(control_port: int | None, env: dict[str, str] | None = None) -> NodeIdentity:
    env = env if env is not None else dict(os.environ)
    name = env.get(Env.POD_NAME) or socket.gethostname()
    host = env.get(Env.ADVERTISE_HOST) or env.get(Env.POD_IP) or "127.0.0.1"
    return NodeIdentity(name=name, node_id=secrets.token_hex(6),
                        version=env.get(Env.VERSION, __version__),
                        address=f"{host}:{control_port}" if control_port is not None else "")


def gateway_url(env: dict[str, str] | None = None) -> str:
    """The WhatsApp server the coreapps connect to and the webapps register through."""
    env = env if env is not None else dict(os.environ)
    return env.get(Env.GATEWAY_URL, f"http://127.0.0.1:{Port.GATEWAY}")

