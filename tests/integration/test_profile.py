"""The account's profile as the on-premises API serves it: the about text, the photo (bytes in,
the same bytes and type out, removable) and the business profile, stored in PostgreSQL so every
webapp answers the same; changing any of them needs the ADMIN role."""

from __future__ import annotations

import base64

import pytest

from runtime_cluster import webapp
from wacluster_testenv.apiclient import ApiClient

pytestmark = pytest.mark.integration
PNG = b"\x89PNG\r\n\x1a\n" + b"photo bytes" * 10


def test_about_is_stored_and_returned_by_every_webapp(lone_webapp):
    api = webapp(lone_webapp)
    assert api.request("GET", "/v1/settings/profile/about").body["settings"] == {"profile": {"about": {"text": ""}}}
    reply = api.request("PATCH", "/v1/settings/profile/about", {"text": "Open 9 to 5 ☀"})
    assert reply.status == 200 and reply.body["meta"]["api_status"] == "stable"
    other = webapp(lone_webapp, name="webapp2")
    assert other.request("GET", "/v1/settings/profile/about").body["settings"]["profile"]["about"] == {
        "text": "Open 9 to 5 ☀"}
    too_long = api.request("PATCH", "/v1/settings/profile/about", {"text": "x" * 140})
    assert too_long.status == 400 and too_long.error["code"] == 1009 and "text" in too_long.error["details"]
    assert api.request("PATCH", "/v1/settings/profile/about", {}).error["code"] == 1008
    nul = api.request("PATCH", "/v1/settings/profile/about", {"text": "a\u0000b"})
    assert nul.status == 400 and "NUL" in nul.error["details"]


def test_the_photo_is_stored_returned_and_removed(lone_webapp):
    api = webapp(lone_webapp)
    assert api.request("GET", "/v1/settings/profile/photo").status == 404
    assert api.request("POST", "/v1/settings/profile/photo", raw=PNG, content_type="image/png").status == 200
    back = api.request("GET", "/v1/settings/profile/photo")
    assert back.status == 200 and back.raw == PNG and back.headers["Content-Type"] == "image/png"
    assert lone_webapp.query("SELECT photo_content_type, length(photo) FROM profile") == [("image/png", len(PNG))]
    refused = api.request("POST", "/v1/settings/profile/photo", raw=b"GIF89a", content_type="image/gif")
    assert refused.status == 415 and "image/jpeg" in refused.error["details"]
    assert api.request("POST", "/v1/settings/profile/photo", raw=b"x" * (5 * 1024 * 1024 + 1),
                       content_type="image/jpeg").status == 413
    assert api.request("DELETE", "/v1/settings/profile/photo").status == 200
    assert api.request("GET", "/v1/settings/profile/photo").status == 404


def test_the_business_profile_keeps_what_a_change_leaves_out(lone_webapp):
    api = webapp(lone_webapp)
    empty = api.request("GET", "/v1/settings/business/profile").body["settings"]["business"]["profile"]
    assert empty == {"address": "", "description": "", "email": "", "vertical": "", "websites": []}
    full = {"address": "1 Hacker Way, Menlo Park", "description": "We sell things", "email": "shop@example.com",
            "vertical": "Shopping and Retail", "websites": ["https://example.com", "http://shop.example.com"]}
    assert api.request("POST", "/v1/settings/business/profile", full).status == 200
    assert api.request("POST", "/v1/settings/business/profile", {"description": "We sell more"}).status == 200
    stored = api.request("GET", "/v1/settings/business/profile").body["settings"]["business"]["profile"]
    assert stored == {**full, "description": "We sell more"}
    for bad, field in [({"vertical": "Space Travel"}, "vertical"), ({"email": "not an email"}, "email"),
                       ({"websites": ["https://a.example", "https://b.example", "https://c.example"]}, "websites"),
                       ({"colour": "red"}, "colour"), ({"address": "1 Hacker\u0000Way"}, "address")]:
        reply = api.request("POST", "/v1/settings/business/profile", bad)
        assert reply.status == 400 and field in reply.error["details"], (bad, reply.body)


def test_the_user_role_reads_the_profile_but_may_not_change_it(lone_webapp):
    admin = webapp(lone_webapp)
    assert admin.request("POST", "/v1/users", {"username": "clerk", "password": "Initial-pass1!"}).status == 201
    clerk = ApiClient(admin.base_url)
    basic = base64.b64encode(b"clerk:Initial-pass1!").decode()
    login = clerk.request("POST", "/v1/users/login", {"new_password": "Chosen-pass2?"},
                          headers={"Authorization": f"Basic {basic}"}, auth=False)
    clerk.token = login.body["users"][0]["token"]
    assert clerk.request("GET", "/v1/settings/business/profile").status == 200
    for method, path, kwargs in [("PATCH", "/v1/settings/profile/about", {"body": {"text": "hi"}}),
                                 ("POST", "/v1/settings/profile/photo", {"raw": PNG, "content_type": "image/png"}),
                                 ("DELETE", "/v1/settings/profile/photo", {}),
                                 ("POST", "/v1/settings/business/profile", {"body": {"email": "a@b.co"}})]:
        reply = clerk.request(method, path, **kwargs)
        assert reply.status == 403 and reply.error["code"] == 1005, (method, path, reply.body)
