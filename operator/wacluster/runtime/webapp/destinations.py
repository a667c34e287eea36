"""The webhook client's resolver: names resolve as usual, then every address the rule refuses
is dropped (the check happens on the addresses actually connected to, so a name that resolves to
an internal address, or changes its answer between a check and the connection, gets nowhere)."""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from wacluster.domain.webhook_destinations import Network, refused_because


class DestinationRefused(OSError):
    """A webhook destination the cluster's rule does not allow."""


class AllowedDestinationsResolver(AbstractResolver):
    def __init__(self, allowed: list[Network]) -> None:
        self.allowed = allowed
        self._resolver = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        kept = [r for r in results if refused_because(r["host"], self.allowed) is None]
        if not kept:
            reason = refused_because(results[0]["host"], self.allowed) if results else "no address"
            raise DestinationRefused(f"webhook destination {host} resolves to {reason}; allow its network in "
                                     f"spec.webhooks.allowedNetworks if it is meant")
        return kept

    async def close(self) -> None:
        await self._resolver.close()


def check_literal_host(host: str, allowed: list[Network]) -> None:
    """aiohttp connects to an IP literal without asking the resolver: check it here."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return  # a name: the resolver checks what it resolves to
    reason = refused_because(host.strip("[]"), allowed)
    if reason:
        raise DestinationRefused(f"webhook destination {host} is {reason}; allow its network in "
                                 f"spec.webhooks.allowedNetworks if it is meant")
