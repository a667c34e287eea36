"""The local Cloud API (wacluster_testenv.cloudapi) as the Cloud benchmarks run it: in a process of
its own, never in a thread of the benchmark (there it shared the interpreter with the load and
stamped arrivals late and bunched), with the pair rate limit off (every benchmark message goes to
its own recipient or does not test that limit); and its control endpoints."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from wacluster_testenv.eventually import eventually
from wacluster_testenv.processes import free_port


@dataclass(frozen=True)
class CloudApiControl:
    """The control endpoints of a local Cloud API at `base`."""
    base: str

    @property
    def port(self) -> int:
        return urlparse(self.base).port

    def call(self, method: str, path: str, body: dict | None = None, timeout: float = 60) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return json.loads(resp.read())


@contextmanager
def cloud_api_process(rate: int, token: str, app_secret: str, log: Path | None = None, auto_statuses: str = "",
                      nice: int = 0) -> Iterator[CloudApiControl]:
    """A local Cloud API accepting `rate` sends a second (130429 beyond), its output in `log`;
    `nice` below 0 puts it ahead of the cluster for the CPU."""
    port = free_port()
    env = {**os.environ, "CLOUDAPI_ACCESS_TOKEN": token, "CLOUDAPI_APP_SECRET": app_secret}
    argv = [sys.executable, "-m", "wacluster", "testenv", "cloudapi", "--port", str(port),
            "--messages-per-second", str(rate), *(["--auto-statuses", auto_statuses] if auto_statuses else [])]
    out = open(log, "ab") if log is not None else subprocess.DEVNULL
    try:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=out,
                                   preexec_fn=(lambda: os.nice(nice)) if nice else None)
    finally:
        if log is not None:
            out.close()
    cloud = CloudApiControl(f"http://127.0.0.1:{port}")
    try:
        eventually(lambda: cloud.call("POST", "/_control/config", {"pair_messages": 1_000_000}, timeout=5), 30,
                   ignore=(OSError,), what="the local Cloud API")
        yield cloud
    finally:
        process.terminate()
        process.wait(30)


def metric(port: int, name: str) -> float:
    """The sum of a metric's samples (all labels) on a role's metrics port."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(v) for v in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M))
