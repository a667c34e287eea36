"""Credentials: login compares them as bytes, both of them every time (any text is a wrong
password, a 401 in the API's error shape, never a server error); bearer tokens are signed, and
a token issued before signing still works until it expires."""

from __future__ import annotations

import psycopg
import pytest

from wacluster.db.tokens import digest
from wacluster_testenv.apiclient import ApiClient

pytestmark = pytest.mark.integration
PASSWORD = "pässwörd-ünïcode-密码"


@pytest.fixture
def api(lone_webapp) -> ApiClient:
    role = lone_webapp.start_webapp(password=PASSWORD)
    return ApiClient(f"https://127.0.0.1:{role.port}")


@pytest.mark.parametrize("user,password", [("ädmin", PASSWORD), ("admin", "wrong-ü"), ("管理员", "x" * 4096)])
def test_non_ascii_or_oversized_credentials_are_refused_not_a_server_error(api, user, password):
    reply = api.login(user, password)
    assert reply.status == 401
    assert reply.error["title"] and "wrong user name or password" in reply.error["details"]


def test_a_non_ascii_admin_password_logs_in(api):
    assert api.login("admin", PASSWORD).status == 200


def test_an_issued_token_works_and_a_forged_one_is_refused(api):
    assert api.login("admin", PASSWORD).status == 200
    assert api.request("GET", "/v1/health").status == 200
    nonce, _, mac = api.token.partition(".")
    forged = ApiClient(api.base_url)
    forged.token = f"{nonce}.{mac[::-1]}"
    reply = forged.request("GET", "/v1/health")
    assert reply.status == 401 and "log in again" in reply.error["details"]


def test_a_token_issued_before_tokens_were_signed_still_works(api, pg_dsn):
    legacy = "L" * 43  # the earlier format: no signature
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO tokens (token, username, expires_at) VALUES (%s, 'admin', now() + interval '1 hour')",
                     (digest(legacy),))
    api.token = legacy
    assert api.request("GET", "/v1/health").status == 200


def test_a_client_guessing_passwords_is_slowed_down_and_told_when_to_retry(api):
    replies = [api.login("admin", f"guess-{n}") for n in range(25)]
    assert [r.status for r in replies[:20]] == [401] * 20
    limited = replies[20]
    assert limited.status == 429 and limited.error["code"] == 1015
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    assert api.login("admin", PASSWORD).status == 429  # even the right password waits its turn
