"""The API's users, through a real webapp on real PostgreSQL: the admin creates users (ADMIN or
USER role), a new user must set its own password on its first login, passwords are stored as
scrypt hashes, logout and a password change revoke tokens, the USER role may not change settings
or manage users (403, code 1005), and the built-in admin keeps logging in with its Secret."""

from __future__ import annotations

import base64

import pytest

from wacluster_testenv.apiclient import ApiClient, Reply

pytestmark = pytest.mark.integration
ADMIN_PASSWORD = "admin-secret-from-the-secret"
INITIAL = "Initial-pass1!"
CHOSEN = "Chosen-pass2?"


@pytest.fixture
def admin(lone_webapp) -> ApiClient:
    role = lone_webapp.start_webapp(password=ADMIN_PASSWORD)
    api = ApiClient(f"https://127.0.0.1:{role.port}")
    assert api.login("admin", ADMIN_PASSWORD).status == 200
    return api


def login(api: ApiClient, user: str, password: str, new_password: str | None = None) -> tuple[ApiClient, Reply]:
    """A fresh client logged in as `user` (its token set on success), and the login's answer."""
    client = ApiClient(api.base_url)
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    body = {"new_password": new_password} if new_password is not None else None
    reply = client.request("POST", "/v1/users/login", body, headers={"Authorization": f"Basic {basic}"}, auth=False)
    if reply.status == 200:
        client.token = reply.body["users"][0]["token"]
    return client, reply


def test_a_created_user_sets_its_password_on_first_login_and_logs_in_with_it(admin, lone_webapp):
    created = admin.request("POST", "/v1/users", {"username": "agent007", "password": INITIAL})
    assert created.status == 201, created.body
    assert created.body["users"] == [{"username": "agent007"}]
    [(stored,)] = lone_webapp.query("SELECT password_hash FROM users WHERE username = 'agent007'")
    assert stored.startswith("scrypt$") and INITIAL not in stored

    _, first = login(admin, "agent007", INITIAL)
    assert first.status == 400 and first.error["code"] == 1008 and "new_password" in first.error["details"]
    _, weak = login(admin, "agent007", INITIAL, new_password="weakpass")
    assert weak.status == 400 and weak.error["code"] == 1009
    user, changed = login(admin, "agent007", INITIAL, new_password=CHOSEN)
    assert changed.status == 200, changed.body
    assert user.request("POST", "/v1/contacts", {"blocking": "no_wait", "contacts": ["+15550001234"]}).status == 200
    assert login(admin, "agent007", INITIAL)[1].status == 401
    assert login(admin, "agent007", CHOSEN)[1].status == 200


def test_the_builtin_admin_logs_in_with_its_secret_and_is_never_forced_to_change_it(admin):
    again, reply = login(admin, "admin", ADMIN_PASSWORD)
    assert reply.status == 200
    assert again.request("GET", "/v1/settings/application").status == 200
    refused = login(admin, "admin", ADMIN_PASSWORD, new_password=CHOSEN)[1]
    assert refused.status == 400 and "Secret" in refused.error["details"]
    assert admin.request("PUT", "/v1/users/admin", {"password": CHOSEN}).status == 400
    assert admin.request("DELETE", "/v1/users/admin").status == 400
    assert login(admin, "admin", ADMIN_PASSWORD)[1].status == 200


def test_the_user_role_may_not_change_settings_or_manage_users(admin):
    assert admin.request("POST", "/v1/users", {"username": "clerk", "password": INITIAL}).status == 201
    clerk, _ = login(admin, "clerk", INITIAL, new_password=CHOSEN)
    for method, path, body in [("PATCH", "/v1/settings/application", {"sent_status": True}),
                               ("POST", "/v1/users", {"username": "other", "password": INITIAL}),
                               ("DELETE", "/v1/users/clerk", None),
                               ("PUT", "/v1/users/admin", {"password": CHOSEN})]:
        reply = clerk.request(method, path, body)
        assert reply.status == 403, (method, path, reply.body)
        assert reply.error == {"code": 1005, "title": "Access denied", "details": reply.error["details"]}
        assert "ADMIN" in reply.error["details"] and reply.body["meta"]["api_status"] == "stable"
    assert clerk.request("GET", "/v1/settings/application").status == 200
    assert clerk.request("GET", "/v1/users/clerk").body["users"] == [{"username": "clerk", "role": "USER"}]
    # Its own password it may change: every token of it is revoked.
    assert clerk.request("PUT", "/v1/users/clerk", {"password": "Third-pass3#"}).status == 200
    assert clerk.request("GET", "/v1/settings/application").status == 401
    assert login(admin, "clerk", "Third-pass3#")[1].status == 200


def test_an_admin_role_user_manages_users_and_settings(admin):
    assert admin.request("POST", "/v1/users", {"username": "boss", "password": INITIAL, "role": "ADMIN"}).status == 201
    boss, _ = login(admin, "boss", INITIAL, new_password=CHOSEN)
    assert boss.request("PATCH", "/v1/settings/application", {"sent_status": True}).status == 200
    assert boss.request("POST", "/v1/users", {"username": "temp", "password": INITIAL}).status == 201
    assert boss.request("DELETE", "/v1/users/temp").status == 200
    assert login(admin, "temp", INITIAL)[1].status == 401


def test_a_duplicate_user_name_gets_the_documented_error(admin):
    assert admin.request("POST", "/v1/users", {"username": "twice", "password": INITIAL}).status == 201
    for name in ("twice", "admin"):
        reply = admin.request("POST", "/v1/users", {"username": name, "password": INITIAL})
        assert reply.status == 409
        assert reply.error == {"code": 1014, "title": "Internal error",
                               "details": "Unable to create user. Already exist?"}
    short = admin.request("POST", "/v1/users", {"username": "abc", "password": INITIAL})
    assert short.status == 400 and short.error["code"] == 1009 and "username" in short.error["details"]
    missing = admin.request("POST", "/v1/users", {"username": "abcd"})
    assert missing.status == 400 and missing.error["code"] == 1008


def test_logout_invalidates_the_token(admin):
    assert admin.request("GET", "/v1/health").status == 200
    assert admin.request("POST", "/v1/users/logout").status == 200
    reply = admin.request("GET", "/v1/health")
    assert reply.status == 401 and reply.error["code"] == 1005


def test_deleting_a_user_revokes_its_tokens(admin):
    assert admin.request("POST", "/v1/users", {"username": "leaver", "password": INITIAL}).status == 201
    leaver, _ = login(admin, "leaver", INITIAL, new_password=CHOSEN)
    assert leaver.request("GET", "/v1/settings/application").status == 200
    assert admin.request("DELETE", "/v1/users/leaver").status == 200
    assert admin.request("DELETE", "/v1/users/leaver").status == 404
    assert login(admin, "leaver", CHOSEN)[1].status == 401
