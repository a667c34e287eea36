"""Media sent by our id through the Cloud API driver (runtime/coreapp/cloud_media.py), as real
processes against the local Cloud API: the file the webapp stored is uploaded once to
`/{version}/{phone-number-id}/media`, the message goes out with the Cloud media id, and later
messages with the same media reuse it (the id is cached in PostgreSQL); an upload refused by the
Cloud API is handled as a refused send; a media id whose file is gone fails its message; the
owners of two shards sending the same file at once upload it once."""

from __future__ import annotations

import pytest

from runtime_cluster import connected, webapp
from test_cloud_delivery import TOKEN, LocalCloud, all_delivered, logs, start_cloud_cluster, statuses
from test_delivery_path import recipient_in_shard
from wacluster_testenv.eventually import eventually

pytestmark = pytest.mark.integration

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8 + b"\xff\xd9"


@pytest.fixture
def cloud():
    with LocalCloud() as served:
        yield served


def upload(api, data: bytes = JPEG, content_type: str = "image/jpeg") -> str:
    reply = api.request("POST", "/v1/media", raw=data, content_type=content_type)
    assert reply.status == 201, reply.body
    return reply.body["media"][0]["id"]


def send_image(api, to: str, media_id: str, caption: str) -> str:
    reply = api.request("POST", "/v1/messages", {"to": to, "type": "image",
                                                  "image": {"id": media_id, "caption": caption}})
    assert reply.status == 201, reply.body
    return reply.body["messages"][0]["id"]


def test_an_image_by_id_is_uploaded_once_and_its_cloud_id_reused_by_the_next_message(cluster, cloud):
    start_cloud_cluster(cluster, cloud)
    api = webapp(cluster)
    media_id = upload(api)
    first = send_image(api, "+15557600001", media_id, "first")
    eventually(lambda: all_delivered(cluster, [first]), 60, what="the first image delivered",
               details=lambda: logs(cluster)[-3000:])
    assert len(cloud.api.media) == 1
    (cloud_id, stored), = cloud.api.media.items()
    assert stored["data"] == JPEG and stored["mime_type"] == "image/jpeg"
    assert cloud.api.find(callback_data=first).body["image"] == {"id": cloud_id, "caption": "first"}

    second = send_image(api, "+15557600002", media_id, "second")
    eventually(lambda: all_delivered(cluster, [second]), 60, what="the second image delivered")
    assert len(cloud.api.media) == 1  # not uploaded again
    assert cloud.api.find(callback_data=second).body["image"] == {"id": cloud_id, "caption": "second"}
    assert cluster.query("SELECT cloud_media_id FROM cloud_media WHERE media_id = %s", (media_id,)) == [(cloud_id,)]
    assert TOKEN not in logs(cluster)


def test_messages_sent_together_with_the_same_media_share_one_upload(cluster, cloud):
    start_cloud_cluster(cluster, cloud)
    api = webapp(cluster)
    media_id = upload(api)
    ids = [send_image(api, f"+1555761{n:04d}", media_id, f"together {n}") for n in range(8)]
    eventually(lambda: all_delivered(cluster, ids), 60, what="every image delivered",
               details=lambda: str(statuses(cluster, ids)))
    (cloud_id,) = cloud.api.media
    assert {cloud.api.find(callback_data=i).body["image"]["id"] for i in ids} == {cloud_id}
    assert cloud.api.counts() == {i: 1 for i in ids}


def test_the_owners_of_two_shards_sending_the_same_media_at_once_upload_it_once(cluster, cloud):
    """Each owner had its own lock: both uploaded the file (two Cloud media ids for one file)."""
    cluster.configure(shards=2)
    cluster.use_cloud_api(cloud.base, TOKEN, cloud.api.phone_number_id)
    cluster.start_master("master1")
    for name in ("wacore1", "wacore2"):
        cluster.start_coreapp(name)
    eventually(lambda: cluster.primary_master(), 30, what="a primary master")
    cluster.register()
    eventually(lambda: connected(cluster, shards=2), 60, what="both shards served through the Cloud API",
               details=lambda: logs(cluster)[-3000:])
    api = webapp(cluster)
    media_id = upload(api)
    cloud.api.upload_latency = 1.5  # both owners come to the file while its upload is under way
    ids = [send_image(api, recipient_in_shard(shard, 2), media_id, f"shard {shard}") for shard in (0, 1)]
    eventually(lambda: all_delivered(cluster, ids), 60, what="both images delivered",
               details=lambda: logs(cluster)[-3000:])
    (cloud_id,) = cloud.api.media
    assert {cloud.api.find(callback_data=i).body["image"]["id"] for i in ids} == {cloud_id}
    assert "uploaded by another coreapp meanwhile" in logs(cluster)
    assert cluster.query("SELECT count(*) FROM cloud_media_uploads") == [(0,)]  # leases released


def test_an_upload_refused_for_the_token_pauses_sending_like_a_refused_send(cluster, cloud):
    start_cloud_cluster(cluster, cloud, args=("--cloud-pause-check-interval", "0.5"))
    api = webapp(cluster)
    media_id = upload(api)
    cloud.api.access_token = "a-token-meta-revoked"
    message = send_image(api, "+15557620001", media_id, "while the token is refused")
    eventually(lambda: "uploading media" in cluster.roles["wacore1"].output()
               and "sending paused for phone number" in cluster.roles["wacore1"].output(), 30,
               what="the refused upload pausing the account", details=lambda: logs(cluster)[-3000:])
    assert statuses(cluster, [message]) == {message: "claimed"} and cloud.api.media == {}
    cloud.api.access_token = TOKEN
    eventually(lambda: all_delivered(cluster, [message]), 30, what="the image delivered once the token is accepted")
    assert len(cloud.api.media) == 1 and cloud.api.counts() == {message: 1}


def test_a_media_id_whose_file_is_gone_fails_its_message_with_a_status_webhook(cluster, cloud):
    cluster.configure(webhook_url="http://127.0.0.1:9/hooks")  # the event is queued; nobody need take it
    start_cloud_cluster(cluster, cloud)
    api = webapp(cluster)
    media_id = upload(api)
    (cluster.workdir / "media" / media_id).unlink()
    failing = send_image(api, "+15557630001", media_id, "its file is gone")
    eventually(lambda: statuses(cluster, [failing]) == {failing: "failed"}, 60, what="the message failed",
               details=lambda: logs(cluster)[-3000:])
    (event,) = [row[0] for row in cluster.query(
        "SELECT payload FROM webhook_events WHERE payload::text LIKE %s", (f"%{failing}%",))]
    (status,) = event["statuses"]
    assert status["status"] == "failed" and status["errors"][0]["code"] == 1006
    assert media_id in status["errors"][0]["details"]
    assert cloud.api.media == {} and cloud.api.counts() == {}
