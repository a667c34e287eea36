"""Authenticated users' latency while a flood of bad bearer tokens hits the same webapp.

One webapp (plain HTTP, so TLS is not what is measured) against the environment's PostgreSQL. A
valid user sends `GET /v1/settings/application` (auth, then a database read) back to back;
meanwhile `--flood-concurrency` clients send requests with bad tokens: `forged` (signed format,
wrong signature: refused without a database query), `unsigned` (the format issued before tokens
were signed: looked up, at most two at a time) or `none` (baseline). Bounded by `--seconds` per
mode and a request cap. Prints one JSON line: the valid user's p50/p99 and throughput per mode.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Bench, emit, percentile  # noqa: E402

MODES = ("none", "forged", "unsigned")
REQUEST_CAP = 200_000  # per mode, flood and user together


def bad_token(mode: str) -> str:
    if mode == "forged":
        return f"{secrets.token_urlsafe(32)}.{secrets.token_urlsafe(16)}"
    return secrets.token_urlsafe(32)


async def run_mode(base: str, token: str, mode: str, seconds: float, concurrency: int) -> dict:
    latencies: list[float] = []
    counts = {"flood": 0, "flood_401": 0, "user_errors": 0}
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency + 4)) as session:
        def budget() -> bool:
            return time.monotonic() < deadline and counts["flood"] + len(latencies) < REQUEST_CAP

        async def flood() -> None:
            while budget():
                headers = {"Authorization": f"Bearer {bad_token(mode)}"}
                async with session.get(f"{base}/v1/settings/application", headers=headers) as resp:
                    await resp.read()
                    counts["flood"] += 1
                    counts["flood_401"] += resp.status == 401

        async def user() -> None:
            headers = {"Authorization": f"Bearer {token}"}
            while budget():
                started = time.monotonic()
                async with session.get(f"{base}/v1/settings/application", headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        counts["user_errors"] += 1
                latencies.append(time.monotonic() - started)

        flooders = [flood() for _ in range(concurrency if mode != "none" else 0)]
        await asyncio.gather(user(), *flooders)
    return {"mode": mode, "user_requests": len(latencies), "user_rps": round(len(latencies) / seconds, 1),
            "user_p50_ms": round(percentile(latencies, 0.5) * 1000, 2), "user_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
            "user_errors": counts["user_errors"], "flood_requests": counts["flood"], "flood_refused": counts["flood_401"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--flood-concurrency", type=int, default=64)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--name", default="auth_flood")
    args = parser.parse_args()
    with Bench("auth") as bench:
        cluster = bench.cluster(Path(bench.env.directory) / "auth")
        try:
            if cluster.dbupgrade().returncode != 0:
                raise RuntimeError("dbupgrade failed")
            role = cluster.start_webapp(password="bench", plain_http=True)
            base = f"http://127.0.0.1:{role.port}"
            from wacluster_testenv.apiclient import ApiClient
            api = ApiClient(base)
            assert api.login("admin", "bench").status == 200
            results = [asyncio.run(run_mode(base, api.token, mode, args.seconds, args.flood_concurrency))
                       for mode in args.modes.split(",")]
        finally:
            cluster.stop_all()
    emit(args.name, {"settings": {"seconds_per_mode": args.seconds, "flood_concurrency": args.flood_concurrency,
                                  "webapp": "1 process, plain HTTP, pool of 16"}, "modes": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
