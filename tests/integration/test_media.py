"""Media as the on-premises API documents it: raw bytes with their Content-Type in, the id out; the
bytes back with the stored type; DELETE removes file and record; each kind has its documented size
limit and only the documented types are accepted."""

from __future__ import annotations

import pytest

from runtime_cluster import webapp

pytestmark = pytest.mark.integration
MB = 1024 * 1024


def test_deleted_media_is_gone_file_and_record(lone_webapp):
    api = webapp(lone_webapp)
    uploaded = api.request("POST", "/v1/media", raw=b"OggS voice note", content_type="audio/ogg")
    assert uploaded.status == 201 and set(uploaded.body) == {"media", "meta"}
    media_id = uploaded.body["media"][0]["id"]
    path = lone_webapp.workdir / "media" / media_id
    assert path.exists()
    back = api.request("GET", f"/v1/media/{media_id}")
    assert back.status == 200 and back.raw == b"OggS voice note" and back.headers["Content-Type"] == "audio/ogg"

    deleted = api.request("DELETE", f"/v1/media/{media_id}")
    assert deleted.status == 200 and deleted.body["meta"]["api_status"] == "stable"
    assert not path.exists() and not lone_webapp.query("SELECT id FROM media WHERE id = %s", (media_id,))
    assert api.request("GET", f"/v1/media/{media_id}").status == 404
    again = api.request("DELETE", f"/v1/media/{media_id}")
    assert again.status == 404 and again.error["code"] == 1006
    assert api.request("DELETE", "/v1/media/..%2F..%2Fetc%2Fpasswd").status == 404


@pytest.mark.parametrize("content_type,size", [("image/png", 5 * MB + 1), ("image/webp", 500 * 1024 + 1)])
def test_each_kind_has_its_documented_size_limit(lone_webapp, content_type, size):
    api = webapp(lone_webapp)
    assert api.request("POST", "/v1/media", raw=b"x" * (size - 1), content_type=content_type).status == 201
    refused = api.request("POST", "/v1/media", raw=b"x" * size, content_type=content_type)
    assert refused.status == 413 and refused.error["code"] == 1009
    assert f"{content_type} media is limited to {size - 1} bytes" in refused.error["details"]


def test_the_documented_types_are_accepted_and_others_refused_saying_which_are(lone_webapp):
    api = webapp(lone_webapp)
    for content_type in ("audio/amr", "audio/mp4", "video/3gpp", "application/msword",
                         "application/vnd.openxmlformats-officedocument.wordprocessingml.document"):
        reply = api.request("POST", "/v1/media", raw=b"some bytes", content_type=content_type)
        assert reply.status == 201, (content_type, reply.body)
        stored = api.request("GET", f"/v1/media/{reply.body['media'][0]['id']}")
        assert stored.headers["Content-Type"] == content_type
    refused = api.request("POST", "/v1/media", raw=b"GIF89a", content_type="image/gif")
    assert refused.status == 415 and refused.error["code"] == 1009 and "image/jpeg" in refused.error["details"]
