"""Outgoing webhooks reach public addresses only, unless the cluster allows a network."""

from __future__ import annotations

import pytest

from wacluster.domain.webhook_destinations import parse_networks, refused_because
from wacluster.runtime.webapp.destinations import DestinationRefused, check_literal_host

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "169.254.169.254", "10.96.0.1", "192.168.1.5",
                                     "172.16.0.9", "fd00::1", "0.0.0.0", "::ffff:127.0.0.1", "fe80::1"])
def test_internal_addresses_are_refused(address):
    assert refused_because(address) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
def test_public_addresses_are_allowed(address):
    assert refused_because(address) is None


def test_an_allowed_network_lets_its_addresses_through():
    allowed = parse_networks("10.0.0.0/8, 127.0.0.1/32")
    assert refused_because("10.96.0.1", allowed) is None
    assert refused_because("127.0.0.1", allowed) is None
    assert refused_because("127.0.0.2", allowed) is not None
    assert refused_because("192.168.1.5", allowed) is not None


def test_a_literal_internal_host_is_refused_and_a_name_left_to_the_resolver():
    with pytest.raises(DestinationRefused, match="link-local"):
        check_literal_host("169.254.169.254", [])
    with pytest.raises(DestinationRefused):
        check_literal_host("[::1]", [])
    check_literal_host("hooks.example.com", [])
    check_literal_host("127.0.0.1", parse_networks("127.0.0.0/8"))
