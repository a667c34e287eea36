"""Where outgoing webhooks may go. A webhook URL comes from an API client and is POSTed from
inside the cluster, so without a rule it reaches what the client cannot: loopback, link-local
(cloud metadata at 169.254.169.254), private and in-cluster addresses. Those are refused unless
the cluster's spec allows their network."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> list[Network]:
    """Comma-separated CIDRs (the spec's allowedNetworks as the webapp receives them)."""
    return [ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()]


def refused_because(address: str, allowed: Iterable[Network] = ()) -> str | None:
    """Why a webhook may not go to `address` (an IP), or None when it may."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if any(ip in network for network in allowed):
        return None
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip.is_private or ip.is_reserved or ip.is_multicast or ip.is_unspecified:
        return "a private or reserved address (in-cluster services live there)"
    return None
