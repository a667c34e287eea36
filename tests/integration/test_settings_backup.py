"""Settings backup and restore as the on-premises API documents them, through a real webapp on
real PostgreSQL: POST /v1/settings/backup {"password"} answers {"settings": {"data"}}, an encrypted
blob of the application settings, the profile and the webhook CA (never users, passwords or
tokens); POST /v1/settings/restore {"password", "data"} puts them back; a wrong password is a 400
that says so and restores nothing; only the ADMIN role may do either."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from runtime_cluster import webapp
from wacluster.crypto.settings_backup import open_sealed
from wacluster_testenv.apiclient import ApiClient

pytestmark = pytest.mark.integration
PNG = b"\x89PNG\r\n\x1a\n" + b"backed-up photo" * 20
PASSWORD = "Backup pass 1!"
USER_PASSWORD = "Initial-pass1!"


def ca_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "backup test CA")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def configure(api: ApiClient, webhook: str, about: str, ca: str | None) -> None:
    """One recognisable state of everything a backup holds."""
    assert api.request("PATCH", "/v1/settings/application", {
        "webhooks": {"url": webhook, "message": {"read": False}}, "callback_backoff_delay_ms": 1234,
        "sent_status": True, "on_call_pager": "pager-group"}).status == 200
    assert api.request("PATCH", "/v1/settings/profile/about", {"text": about}).status == 200
    assert api.request("POST", "/v1/settings/business/profile",
                       {"description": about, "vertical": "Education", "websites": ["https://a.example"]}).status == 200
    if ca:
        assert api.request("POST", "/v1/settings/profile/photo", raw=PNG, content_type="image/png").status == 200
        assert api.request("POST", "/v1/certificates/webhooks/ca", raw=ca.encode(), content_type="text/plain").status == 200
    else:
        assert api.request("DELETE", "/v1/settings/profile/photo").status == 200
        assert api.request("DELETE", "/v1/certificates/webhooks/ca").status == 200


def state(api: ApiClient) -> dict:
    application = api.request("GET", "/v1/settings/application").body["settings"]["application"]
    photo = api.request("GET", "/v1/settings/profile/photo")
    ca = api.request("GET", "/v1/certificates/webhooks/ca")
    return {"application": application,
            "about": api.request("GET", "/v1/settings/profile/about").body["settings"],
            "business": api.request("GET", "/v1/settings/business/profile").body["settings"],
            "photo": (photo.status, photo.raw, photo.headers.get("Content-Type")),
            "ca": (ca.status, ca.raw if ca.status == 200 else None)}


def test_a_restore_brings_back_the_settings_profile_and_webhook_ca_of_the_backup(lone_webapp):
    api = webapp(lone_webapp)
    ca = ca_pem()
    configure(api, "https://crm.example/whatsapp", "Backed up", ca)
    before = state(api)
    assert before["ca"] == (200, ca.encode()) and before["photo"][0] == 200

    reply = api.request("POST", "/v1/settings/backup", {"password": PASSWORD})
    assert reply.status == 200, reply.body
    assert set(reply.body) == {"settings", "meta"} and set(reply.body["settings"]) == {"data"}
    data = reply.body["settings"]["data"]
    assert b"crm.example" not in base64.b64decode(data), "the backup is encrypted"

    configure(api, "https://other.example/hook", "Changed since", None)
    assert state(api) != before
    restored = api.request("POST", "/v1/settings/restore", {"password": PASSWORD, "data": data})
    assert restored.status == 200, restored.body
    assert state(api) == before
    other = webapp(lone_webapp, name="webapp2")
    assert state(other) == before, "restored in PostgreSQL: every webapp answers the same"


def test_a_backup_holds_no_user_password_or_token(lone_webapp):
    api = webapp(lone_webapp)
    assert api.request("POST", "/v1/users", {"username": "clerk", "password": USER_PASSWORD}).status == 201
    data = api.request("POST", "/v1/settings/backup", {"password": PASSWORD}).body["settings"]["data"]
    content = open_sealed(data, PASSWORD).decode()
    assert set(json.loads(content)) == {"format", "settings", "profile", "certificates"}
    [(password_hash,)] = lone_webapp.query("SELECT password_hash FROM users WHERE username = 'clerk'")
    for secret in (api.token, password_hash, "clerk", "secret-admin-password"):
        assert secret not in content


def test_a_wrong_password_is_a_400_that_says_so_and_restores_nothing(lone_webapp):
    api = webapp(lone_webapp)
    configure(api, "https://crm.example/whatsapp", "Original", None)
    data = api.request("POST", "/v1/settings/backup", {"password": PASSWORD}).body["settings"]["data"]
    configure(api, "https://now.example/hook", "Current", None)
    current = state(api)

    wrong = api.request("POST", "/v1/settings/restore", {"password": "not it", "data": data})
    assert wrong.status == 400 and wrong.error["code"] == 1009, wrong.body
    assert "password" in wrong.error["details"] and "does not open this backup" in wrong.error["details"]
    garbage = api.request("POST", "/v1/settings/restore", {"password": PASSWORD, "data": "not a backup"})
    assert garbage.status == 400 and garbage.error["details"].startswith("data: ")
    missing = api.request("POST", "/v1/settings/restore", {"password": PASSWORD})
    assert missing.status == 400 and missing.error["code"] == 1008 and "data" in missing.error["details"]
    assert api.request("POST", "/v1/settings/backup", {}).error["code"] == 1008
    assert state(api) == current


def test_the_user_role_may_neither_back_up_nor_restore(lone_webapp):
    api = webapp(lone_webapp)
    data = api.request("POST", "/v1/settings/backup", {"password": PASSWORD}).body["settings"]["data"]
    assert api.request("POST", "/v1/users", {"username": "clerk", "password": USER_PASSWORD}).status == 201
    clerk = ApiClient(api.base_url)
    basic = base64.b64encode(f"clerk:{USER_PASSWORD}".encode()).decode()
    login = clerk.request("POST", "/v1/users/login", {"new_password": "Chosen-pass2?"},
                          headers={"Authorization": f"Basic {basic}"}, auth=False)
    clerk.token = login.body["users"][0]["token"]
    for path, body in [("/v1/settings/backup", {"password": PASSWORD}),
                       ("/v1/settings/restore", {"password": PASSWORD, "data": data})]:
        reply = clerk.request("POST", path, body)
        assert reply.status == 403 and reply.error["code"] == 1005, (path, reply.body)
