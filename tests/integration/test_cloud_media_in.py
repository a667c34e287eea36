"""Inbound media in cloud mode (issue 18): the media id a Cloud webhook carries is fetched through
GET /v1/media/{id} from the (local) Cloud API with the access token, byte-exact with its type,
cached on the media volume so the next GET downloads nothing; an id the Cloud API does not know is
the on-premises 404 (1006); an id of neither shape is 404 without asking the Cloud API."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from runtime_cluster import webapp
from test_cloud_delivery import TOKEN, LocalCloud
from test_cloud_webhooks import NUMBER, PATH, bodies, cloud_env, control, port
from test_onprem_webhooks import receiver  # noqa: F401 (a fixture)
from wacluster.api.interprocess import Env
from wacluster_testenv.eventually import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def cloud_media(lone_webapp, receiver):  # noqa: F811 (the fixture)
    """A webapp in cloud mode with the access token, receiving the local Cloud API's webhooks."""
    with LocalCloud(phone_number_id=NUMBER) as served:
        lone_webapp.configure(webhook_url=receiver)
        lone_webapp.webapp_env = {**cloud_env(), Env.CLOUD_BASE_URL: served.base, Env.CLOUD_ACCESS_TOKEN: TOKEN}
        api = webapp(lone_webapp)
        control(served, "/_control/config", {"webhook_url": f"https://127.0.0.1:{port(lone_webapp)}{PATH}",
                                             "webhook_verify_tls": False})
        yield api, served


def test_an_inbound_images_cloud_id_is_fetched_once_and_served_with_its_type(cloud_media):
    api, served = cloud_media
    control(served, "/_control/inbound", {"type": "image"})
    eventually(lambda: [m for b in bodies() for m in b.get("messages", []) if m.get("type") == "image"], 30,
               what="the image message at the business")
    media_id = next(m for b in bodies() for m in b.get("messages", []) if m.get("type") == "image")["image"]["id"]
    expected = served.api.media[media_id]["data"]

    first = api.request("GET", f"/v1/media/{media_id}")
    assert first.status == 200 and first.raw == expected and first.headers["Content-Type"] == "image/jpeg"
    second = api.request("GET", f"/v1/media/{media_id}")
    assert second.status == 200 and second.raw == expected and second.headers["Content-Type"] == "image/jpeg"
    assert served.api.media_calls == [f"/v23.0/{media_id}", f"/_media/{media_id}"]  # fetched once


def test_a_cloud_id_the_cloud_api_does_not_know_is_the_onprem_404(cloud_media):
    api, served = cloud_media
    unknown = api.request("GET", "/v1/media/1234567890123456")
    assert unknown.status == 404 and unknown.error["code"] == 1006
    assert served.api.media_calls == ["/v23.0/1234567890123456"]
    # Asked again (a client polling, or a flood of made-up ids): answered from what the webapp
    # learnt, not passed on to the Graph API each time.
    for _ in range(3):
        again = api.request("GET", "/v1/media/1234567890123456")
        assert again.status == 404 and again.error["code"] == 1006
    assert served.api.media_calls == ["/v23.0/1234567890123456"]


@pytest.mark.parametrize("media_id", ["not-an-id", "..%2F..%2Fetc%2Fpasswd", "12ab", "1" * 31])
def test_an_id_of_neither_shape_is_404_without_asking_the_cloud_api(cloud_media, media_id):
    api, served = cloud_media
    reply = api.request("GET", f"/v1/media/{media_id}")
    assert reply.status == 404 and reply.error["code"] == 1006
    assert served.api.media_calls == []


def test_media_over_its_types_documented_size_is_503_and_leaves_nothing_behind(cloud_media, lone_webapp):
    api, served = cloud_media
    media_id, data = "1987654321012345", b"RIFF" + b"x" * (500 * 1024)  # a sticker over 500 KB
    served.loop.call_soon_threadsafe(served.api.media.__setitem__, media_id, {
        "data": data, "mime_type": "image/webp", "sha256": "0" * 64, "file_size": len(data)})
    eventually(lambda: media_id in served.api.media, 5, what="the media at the local Cloud API")
    refused = api.request("GET", f"/v1/media/{media_id}")
    assert refused.status == 503 and refused.error["code"] == 1011
    assert served.api.media_calls == [f"/v23.0/{media_id}", f"/_media/{media_id}"]
    assert not lone_webapp.query("SELECT id FROM media WHERE id = %s", (media_id,))
    assert [p.name for p in (lone_webapp.workdir / "media").iterdir()] == []


def test_concurrent_gets_of_a_new_cloud_id_download_it_once(cloud_media):
    api, served = cloud_media
    payload = control(served, "/_control/inbound", {"type": "document"})["queued"]
    media_id = payload["entry"][0]["changes"][0]["value"]["messages"][0]["document"]["id"]
    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda _: api.request("GET", f"/v1/media/{media_id}"), range(6)))
    assert {(r.status, r.raw, r.headers["Content-Type"]) for r in replies} == {
        (200, served.api.media[media_id]["data"], "application/pdf")}
    assert served.api.media_calls.count(f"/_media/{media_id}") == 1
