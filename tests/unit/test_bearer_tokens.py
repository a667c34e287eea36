"""Bearer tokens are signed: a forged or random one is refused before any database query."""

from __future__ import annotations

import asyncio

import pytest

from wacluster.runtime.webapp.auth import Auth
from wacluster.runtime.webapp.errors import ApiError

pytestmark = pytest.mark.unit


class _Request:
    def __init__(self, token: str) -> None:
        self.headers = {"Authorization": f"Bearer {token}"}


class _NoDatabase:
    """Stands where the pool is: any use is the failure under test."""

    def connection(self):
        raise AssertionError("the database was asked about a forged token")


def _auth(password: str = "secret") -> Auth:
    return Auth(_NoDatabase(), "admin", password, token_ttl=3600)


def test_an_issued_token_carries_a_valid_signature():
    auth = _auth()
    token = auth.issue()
    assert auth.signature_valid(token) is True
    assert auth.issue() != token


def test_a_token_signed_under_another_password_is_not_valid():
    assert _auth("secret").signature_valid(_auth("other").issue()) is False


@pytest.mark.parametrize("forged", ["abc.def", "x" * 43 + ".AAAAAAAAAAAAAAAAAAAAAA", ".", "ü.ü"])
def test_forged_tokens_are_refused_without_a_database_query(forged):
    with pytest.raises(ApiError) as refused:
        asyncio.run(_auth().check(_Request(forged)))
    assert refused.value.kind == "unauthorized"


def test_a_tampered_token_is_refused_without_a_database_query():
    auth = _auth()
    nonce, _, mac = auth.issue().partition(".")
    with pytest.raises(ApiError):
        asyncio.run(auth.check(_Request(f"{nonce[:-1]}{'A' if nonce[-1] != 'A' else 'B'}.{mac}")))
