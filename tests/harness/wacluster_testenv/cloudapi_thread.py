"""The local Cloud API (cloudapi.py) served from a thread of its own, for synchronous callers: the
integration tests and the benchmarks. `with ServedCloudApi(access_token=..., app_secret=...) as
cloud:` gives `cloud.base` (its URL) and `cloud.api` (the CloudApi, to read sends and counts)."""

from __future__ import annotations

import asyncio
import threading

from wacluster_testenv.cloudapi import CloudApi, Fault, running


class ServedCloudApi:
    def __init__(self, **config) -> None:
        self.api = CloudApi(**config)
        self.loop = asyncio.new_event_loop()
        self.base = ""
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True, name="local-cloud-api")

    def _serve(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            async with running(self.api) as base:
                self.base = base
                self._started.set()
                await self._stop.wait()
        self.loop.run_until_complete(main())

    def __enter__(self) -> "ServedCloudApi":
        self._thread.start()
        if not self._started.wait(30):
            raise RuntimeError("the local Cloud API did not start within 30 s")
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def fault(self, **fault) -> None:
        """Inject a fault (cloudapi.Fault) from the caller's thread."""
        self.loop.call_soon_threadsafe(self.api.faults.append, Fault(**fault))
