"""The Cloud driver never dies silently (runtime/coreapp/cloud_gateway.py): a task of the driver
that fails closes it and tells the coreapp (which fences the session), and whatever it held
fails with GatewayClosed, so the sender hands it to the backlog scan."""

from __future__ import annotations

import asyncio

import pytest

from wacluster.runtime.coreapp.cloud_gateway import CloudGateway
from wacluster.runtime.gateway import CloudSettings
from wacluster.runtime.gateway_link import GatewayClosed

pytestmark = pytest.mark.unit

SETTINGS = CloudSettings("http://127.0.0.1:9", "v23.0", "1065", 80, access_token="secret-token")


def test_the_settings_never_show_the_access_token():
    assert "secret-token" not in repr(SETTINGS) and "secret-token" not in str(SETTINGS)


async def test_a_failing_dispatcher_closes_the_driver_and_fails_what_it_held():
    closed: list[str] = []

    def may_send() -> bool:
        raise RuntimeError("a bug in the lease check")

    async def on_closed(reason: str) -> None:
        closed.append(reason)
        await driver.close()

    async def on_paused(reason):
        pass

    driver = CloudGateway(None, SETTINGS, None, rate=80, in_doubt_window=30, pause_check_every=30,
                          may_send=may_send, on_paused=on_paused, on_closed=on_closed)
    batch = await driver.send([{"id": "m1", "to": "+15550001", "body": {"to": "+15550001", "type": "text",
                                                                        "text": {"body": "hi"}}}])
    await asyncio.wait_for(driver._guarded(driver._dispatch(), "dispatcher"), 5)
    assert closed == ["the Cloud driver's dispatcher failed: RuntimeError('a bug in the lease check')"]
    with pytest.raises(GatewayClosed):
        await batch
    with pytest.raises(GatewayClosed):
        await driver.send([])
