"""Closed-loop load from wrk (C, one thread, epoll): the load generator then costs a small
fraction of the CPU the Python client does, which matters when it shares two cores with what it
measures. Each request carries a unique body; wrk's own latency histogram gives p50/p99.

With `count_unclaimed`, every 202 whose body says `"claimed": []` is counted apart: a coreapp's
control port answers so for an id it acknowledged without sending (no stored row it could claim),
and such a request must not count as a message sent (bench/throughput.py's direct path)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

SCRIPT = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%(headers)s
local template = %(template)s
local n = 0
local threads = {}
unclaimed = 0
setup = function(thread)
  table.insert(threads, thread)
end
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, string.format(template, n))
end
%(response)s
done = function(summary, latency, requests)
  local not_claimed = 0
  for _, thread in ipairs(threads) do
    not_claimed = not_claimed + (thread:get("unclaimed") or 0)
  end
  io.write("WRK_RESULT " .. string.format(
    '{"requests": %%d, "duration_us": %%d, "status_errors": %%d, "socket_errors": %%d, "p50_us": %%d, "p99_us": %%d, "unclaimed": %%d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), not_claimed))
end
"""

# Defined only when asked for: with a `response` function wrk hands every body to Lua.
COUNT_UNCLAIMED = r"""
response = function(status, headers, body)
  if status == 202 and body ~= nil and string.find(body, '"claimed"%s*:%s*%[%s*%]') then
    unclaimed = unclaimed + 1
  end
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal for this text


def run(url: str, headers: dict[str, str], body_template: str, concurrency: int, duration: float,
        count_unclaimed: bool = False) -> dict:
    """`body_template` holds one `%d`, replaced by the request's sequence number: 1, 2, 3, ... in
    the order wrk makes the requests (one thread). With `count_unclaimed`, `sent` excludes the
    202s that claimed nothing and `unclaimed` counts them."""
    header_lines = "\n".join(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items())
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "load.lua"
        script.write_text(SCRIPT % {"headers": header_lines, "template": _lua_string(body_template),
                                    "response": COUNT_UNCLAIMED if count_unclaimed else ""})
        out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{duration:.0f}s", "--timeout", "10s",
                              "-s", str(script), url], capture_output=True, text=True, timeout=duration + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRK_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result: {out.stdout[-500:]} {out.stderr[-500:]}")
    raw = json.loads(line.split(" ", 1)[1])
    ok = raw["requests"] - raw["status_errors"] - raw["unclaimed"]
    seconds = raw["duration_us"] / 1e6
    result = {"concurrency": concurrency, "msgs_per_s": round(ok / seconds, 1),
              "p50_ms": round(raw["p50_us"] / 1000, 2), "p99_ms": round(raw["p99_us"] / 1000, 2),
              "errors": raw["status_errors"] + raw["socket_errors"], "sent": ok}
    if count_unclaimed:
        result["unclaimed"] = raw["unclaimed"]
    return result
