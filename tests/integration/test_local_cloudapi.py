"""The local Cloud API (wacluster_testenv.cloudapi) on loopback, fed with bodies our mapping
produces: it answers like Meta's (wamid, contacts), counts duplicate sends, throttles with 130429
and 131056, refuses bad tokens and bodies in Meta's error shape, injects server errors, and POSTs
status webhooks signed with the app secret."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import aiohttp
import pytest
from aiohttp import web

from wacluster.domain.cloud_errors import Action, Scope, classify
from wacluster.domain.cloud_messages import cloud_message, media_to_upload, with_cloud_media
from onprem_corpus import BODIES, stored
from wacluster_testenv.cloudapi import CloudApi, Fault, running

pytestmark = pytest.mark.harness

TOKEN = "EAAG-test-token"
SECRET = "app-secret-for-signatures"
VERSION = "v23.0"


def new_cloud(**config) -> CloudApi:
    return CloudApi(access_token=TOKEN, app_secret=SECRET, **config)


async def send(session: aiohttp.ClientSession, base: str, cloud: CloudApi, body: dict,
               token: str = TOKEN) -> tuple[int, dict]:
    async with session.post(f"{base}/{VERSION}/{cloud.phone_number_id}/messages", json=body,
                            headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, await resp.json()


def text_to(to: str, our_id: str) -> dict:
    return cloud_message(our_id, stored({"to": to, "text": {"body": "hello"}}))


async def test_every_mapped_message_type_is_accepted_with_a_wamid():
    cloud = new_cloud()
    async with running(cloud) as base, aiohttp.ClientSession() as session:
        for n, (name, onprem) in enumerate(BODIES.items()):
            body = cloud_message(f"wamid.ours{n}", stored(onprem))
            body = with_cloud_media(body, {m: "1013859600285441" for m in media_to_upload(body)})
            status, answer = await send(session, base, cloud, body)
            assert status == 200, (name, answer)
            assert answer["messaging_product"] == "whatsapp"
            assert answer["contacts"] == [{"input": body["to"], "wa_id": body["to"].lstrip("+")}]
            assert answer["messages"][0]["id"].startswith("wamid.")
    assert cloud.counts() == {f"wamid.ours{n}": 1 for n in range(len(BODIES))}


async def test_a_duplicate_send_is_counted_under_its_callback_data():
    cloud = new_cloud()
    async with running(cloud) as base, aiohttp.ClientSession() as session:
        for our_id in ("wamid.a", "wamid.b", "wamid.a"):
            assert (await send(session, base, cloud, text_to("16315551234", our_id)))[0] == 200
        async with session.get(f"{base}/_control/sends") as resp:
            seen = await resp.json()
    assert seen["duplicates"] == {"wamid.a": 2}
    assert seen["counts"] == {"wamid.a": 2, "wamid.b": 1}
    assert len({s["wamid"] for s in seen["sends"]}) == 3   # each send its own wamid


async def test_sends_over_the_configured_rate_get_130429_and_are_not_recorded():
    cloud = new_cloud(messages_per_second=5, clock=lambda: 1000.0)   # every send in the same second
    async with running(cloud) as base, aiohttp.ClientSession() as session:
        results = [await send(session, base, cloud, text_to(f"1631555{n:04d}", f"wamid.r{n}")) for n in range(12)]
    assert [status for status, _ in results] == [200] * 5 + [400] * 7
    refused = [answer for status, answer in results if status != 200]
    assert {a["error"]["code"] for a in refused} == {130429}
    assert sorted(cloud.counts()) == sorted(f"wamid.r{n}" for n in range(5))
    verdict = classify(400, refused[0])
    assert (verdict.action, verdict.scope) == (Action.RETRY, Scope.ACCOUNT)


async def test_a_send_held_by_a_latency_fault_counts_in_the_second_it_arrived_in():
    """Two sends arrive at t=0 and are held 0.5 s; four more come at t=0.1 (rate 5 a second).
    Checked after the delay against the sends that came meanwhile, the held two were refused
    although they had arrived within the limit; a send that fails gives its place back."""
    now = [0.0]
    cloud = new_cloud(messages_per_second=5, clock=lambda: now[0])
    cloud.faults.append(Fault(count=2, latency=0.5))
    async with running(cloud) as base, aiohttp.ClientSession() as session:
        held = [asyncio.create_task(send(session, base, cloud, text_to(f"1631556{n:04d}", f"held{n}"))) for n in range(2)]
        await asyncio.sleep(0.2)  # both arrived and wait in their fault
        now[0] = 0.1
        later = [await send(session, base, cloud, text_to(f"1631557{n:04d}", f"later{n}")) for n in range(4)]
        assert [status for status, _ in await asyncio.gather(*held)] == [200, 200]
        assert [status for status, _ in later] == [200, 200, 200, 400]  # the sixth in that second
        cloud.faults.append(Fault(count=1, status=500))
        now[0] = 1.05  # the held ones' second is over, the later three's is not: room for two
        assert (await send(session, base, cloud, text_to("16315580001", "failed")))[0] == 500
        statuses = [(await send(session, base, cloud, text_to(f"1631559{n:04d}", f"after{n}")))[0] for n in range(3)]
        assert statuses == [200, 200, 400]


async def test_the_pair_rate_limit_delays_one_recipient_only():
    cloud = new_cloud(pair_messages=2, pair_window=60)
    async with running(cloud) as base, aiohttp.ClientSession() as session:
        same = [await send(session, base, cloud, text_to("16315551234", f"wamid.p{n}")) for n in range(3)]
        other = await send(session, base, cloud, text_to("16315559999", "wamid.other"))
    assert [s for s, _ in same] == [200, 200, 400] and same[2][1]["error"]["code"] == 131056
    assert other[0] == 200
    assert classify(400, same[2][1]).scope is Scope.RECIPIENT


async def test_a_wrong_token_gets_401_with_code_190():
    cloud = new_cloud()
    async with running(cloud) as base, aiohttp.ClientSession() as session:
        status, answer = await send(session, base, cloud, text_to("16315551234", "wamid.t"), token="stale")
    assert status == 401 and answer["error"]["code"] == 190
    assert set(answer["error"]) >= {"message", "type", "code", "error_subcode", "fbtrace_id"}
    assert classify(status, answer).action is Action.PAUSE_ACCOUNT
    assert cloud.sends == []


async def test_a_body_meta_would_refuse_gets_400_code_100_naming_the_field():
    cloud = new_cloud()
    onprem_form = {**text_to("16315551234", "wamid.bad"), "preview_url": True}
    async with running(cloud) as base, aiohttp.ClientSession() as session:
        status, answer = await send(session, base, cloud, onprem_form)
    assert status == 400 and answer["error"]["code"] == 100
    assert "preview_url" in answer["error"]["error_data"]["details"]
    assert classify(status, answer).action is Action.FAIL


async def test_injected_server_errors_answer_the_next_sends_then_stop():
    cloud = new_cloud()
    async with running(cloud) as base, aiohttp.ClientSession() as session:
        async with session.post(f"{base}/_control/faults", json={"status": 503, "count": 2}) as resp:
            assert resp.status == 200
        statuses = [(await send(session, base, cloud, text_to("16315551234", f"wamid.f{n}")))[0] for n in range(3)]
    assert statuses == [503, 503, 200]
    assert classify(503, None).action is Action.RETRY


async def test_media_is_uploaded_and_described():
    cloud = new_cloud()
    async with running(cloud) as base, aiohttp.ClientSession() as session:
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", "image/png")
        form.add_field("file", b"\x89PNG fake", filename="a.png", content_type="image/png")
        async with session.post(f"{base}/{VERSION}/{cloud.phone_number_id}/media", data=form,
                                headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            assert resp.status == 200
            media_id = (await resp.json())["id"]
        async with session.get(f"{base}/{VERSION}/{media_id}", headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            info = await resp.json()
    assert info["id"] == media_id and info["mime_type"] == "image/png"
    assert info["sha256"] == hashlib.sha256(b"\x89PNG fake").hexdigest() and info["file_size"] == 9


async def test_status_webhooks_arrive_signed_with_the_app_secret_and_carry_our_id():
    received: asyncio.Queue = asyncio.Queue()

    async def receiver(request: web.Request) -> web.Response:
        await received.put((await request.read(), request.headers.get("X-Hub-Signature-256", "")))
        return web.Response(status=200)

    hook_app = web.Application()
    hook_app.router.add_post("/webhook", receiver)
    runner = web.AppRunner(hook_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook_url = f"http://127.0.0.1:{runner.addresses[0][1]}/webhook"
    try:
        cloud = new_cloud(webhook_url=hook_url, auto_statuses=("sent", "delivered"))
        async with running(cloud) as base, aiohttp.ClientSession() as session:
            status, answer = await send(session, base, cloud, text_to("16315551234", "wamid.ours"))
            assert status == 200
            async with session.post(f"{base}/_control/statuses", json={
                    "biz_opaque_callback_data": "wamid.ours", "status": "failed",
                    "error": {"code": 131026, "title": "Message undeliverable."}}) as resp:
                assert resp.status == 200
            deliveries = [await asyncio.wait_for(received.get(), timeout=10) for _ in range(3)]
    finally:
        await runner.cleanup()
    seen = []
    for raw, header in deliveries:
        expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(header, expected)
        status_item = json.loads(raw)["entry"][0]["changes"][0]["value"]["statuses"][0]
        assert status_item["id"] == answer["messages"][0]["id"]
        assert status_item["biz_opaque_callback_data"] == "wamid.ours"
        seen.append(status_item["status"])
    assert seen == ["sent", "delivered", "failed"]
    failed = json.loads(deliveries[2][0])["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert failed["errors"][0]["code"] == 131026
    assert classify(400, {"error": failed["errors"][0]}).on_prem.code == 1013
