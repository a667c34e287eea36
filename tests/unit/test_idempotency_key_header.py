"""The Idempotency-Key header's value (api/idempotency.py): what is a key, and when two requests
are the same request."""

from __future__ import annotations

import pytest

from wacluster.api.idempotency import MAX_LENGTH, InvalidKey, fingerprint, parse_key
from wacluster.api.rest import OutgoingMessage

pytestmark = pytest.mark.unit


def test_no_header_is_no_key():
    assert parse_key([]) is None


def test_a_bare_token_and_the_drafts_quoted_string_name_the_same_key():
    assert parse_key(["8e03978e-40d5-43e8-bc93-6894a57f9324"]) == "8e03978e-40d5-43e8-bc93-6894a57f9324"
    assert parse_key(['"8e03978e-40d5-43e8-bc93-6894a57f9324"']) == "8e03978e-40d5-43e8-bc93-6894a57f9324"
    assert parse_key([r'"say \"hi\" \\ twice"']) == r'say "hi" \ twice'


@pytest.mark.parametrize("value, why", [
    ("", "empty"), ('""', "empty"), ("   ", "empty"),
    ("k" * (MAX_LENGTH + 1), "characters long"),
    ("caf\u00e9", "visible ASCII"), ("tab\tinside", "visible ASCII"), ("a b", "visible ASCII"),
    ("\x01", "visible ASCII"),
    ('"unterminated', "not a quoted string"), (r'"bad \n escape"', "backslash"), ('"a"b"', "must be escaped"),
])
def test_a_malformed_key_is_refused_with_the_reason(value, why):
    with pytest.raises(InvalidKey, match=why):
        parse_key([value])


def test_a_key_of_the_maximum_length_is_accepted():
    assert parse_key(["k" * MAX_LENGTH]) == "k" * MAX_LENGTH


def test_two_key_headers_are_refused():
    with pytest.raises(InvalidKey, match="at most one"):
        parse_key(["a", "b"])


def _content(data: dict) -> dict:
    return OutgoingMessage.model_validate(data).model_dump(exclude_none=True)


def test_the_same_message_serialised_differently_has_one_fingerprint():
    plain = _content({"to": "15551234567", "type": "text", "text": {"body": "hi"}})
    reordered = _content({"text": {"body": "hi"}, "type": "text", "to": "15551234567", "recipient_type": "individual"})
    assert fingerprint(plain) == fingerprint(reordered)


def test_another_message_has_another_fingerprint():
    hi = _content({"to": "15551234567", "type": "text", "text": {"body": "hi"}})
    ho = _content({"to": "15551234567", "type": "text", "text": {"body": "ho"}})
    other_recipient = _content({"to": "15551234568", "type": "text", "text": {"body": "hi"}})
    assert len({fingerprint(hi), fingerprint(ho), fingerprint(other_recipient)}) == 3
