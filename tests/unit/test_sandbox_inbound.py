"""The sandbox's inbound notifications are built in the on-premises webhook shapes."""

from __future__ import annotations

import pytest

from wacluster.runtime.sandbox_inbound import (
    MEDIA_TYPES, MESSAGE_TYPES, error_payload, message_payload, status_payload,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("kind", sorted(MESSAGE_TYPES))
def test_every_documented_message_type_is_built_with_its_object(kind):
    payload = message_payload({"type": kind, "from": "15551234567"}, "15550001111", 1_700_000_000)
    [message] = payload["messages"]
    assert message["type"] == kind and message["from"] == "15551234567" and message["timestamp"] == "1700000000"
    body_key = "errors" if kind == "unknown" else kind
    assert message[body_key]
    assert ("contacts" in payload) == (kind != "system")
    if kind in MEDIA_TYPES:
        assert message[kind]["mime_type"] == MEDIA_TYPES[kind]


def test_an_unknown_type_or_status_is_refused_naming_the_valid_ones():
    with pytest.raises(ValueError, match="text"):
        message_payload({"type": "hologram"}, "1", 0)
    with pytest.raises(ValueError, match="delivered"):
        status_payload({"id": "wamid.x", "status": "in_orbit"}, 0)


def test_a_failed_status_carries_errors_and_the_others_pricing():
    [failed] = status_payload({"id": "wamid.x", "status": "failed"}, 0)["statuses"]
    assert failed["errors"][0]["code"] == 470 and "pricing" not in failed
    [read] = status_payload({"id": "wamid.x", "status": "read"}, 0)["statuses"]
    assert "errors" not in read and read["conversation"]["id"] and read["pricing"]["billable"]
    assert error_payload({"code": "1011"}) == {"errors": [{"code": 1011, "title": "Internal error",
                                                           "details": "an error the sandbox was asked to report"}]}
