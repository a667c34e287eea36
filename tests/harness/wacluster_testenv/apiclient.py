"""A small synchronous client of the webapp's REST API, for tests, the demo and benchmarks."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass

from wacluster_testenv.eventually import NotReached, eventually


@dataclass
class Reply:
    status: int
    body: dict
    headers: dict

    @property
    def error(self) -> dict:
        return (self.body.get("errors") or [{}])[0]


class ApiClient:
    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.token: str | None = None
        self.context = ssl._create_unverified_context()  # the cluster's self-signed test certificate

    def login(self, username: str, password: str) -> Reply:
        basic = base64.b64encode(f"{username}:{password}".encode()).decode()
        reply = self.request("POST", "/v1/users/login", headers={"Authorization": f"Basic {basic}"}, auth=False)
        if reply.status == 200:
            self.token = reply.body["users"][0]["token"]
        return reply

    def request(self, method: str, path: str, body=None, headers: dict | None = None, auth: bool = True,
                raw: bytes | None = None, content_type: str = "application/json") -> Reply:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        all_headers = {"Content-Type": content_type, **(headers or {})}
        if auth and self.token and "Authorization" not in all_headers:
            all_headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as resp:
                payload = resp.read()
                status, hdrs = resp.status, dict(resp.headers)
        except urllib.error.HTTPError as err:
            payload, status, hdrs = err.read(), err.code, dict(err.headers)
        try:
            parsed = json.loads(payload) if payload and "json" in hdrs.get("Content-Type", "") else {}
        except ValueError:
            parsed = {}
        reply = Reply(status, parsed, hdrs)
        reply.raw = payload  # type: ignore[attr-defined]
        return reply

    def send_text(self, to: str, text: str) -> Reply:
        return self.request("POST", "/v1/messages", {"to": to, "type": "text", "text": {"body": text}})

    def send_until_accepted(self, to: str, text: str, deadline: float = 30.0) -> str | None:
        """Send a text, retrying the webapp's 503 (no connected owner yet: a failover is under
        way) until it is accepted; the message id, or None when none was accepted by `deadline`.
        Any other answer is a failure of the test."""
        def accepted() -> str | None:
            reply = self.send_text(to, text)
            if reply.status == 201:
                return reply.body["messages"][0]["id"]
            if reply.status != 503:
                raise AssertionError(f"sending to {to}: {reply.status} {reply.body}")
            return None

        try:
            return eventually(accepted, timeout=deadline, interval=0.1, what=f"a message to {to} accepted")
        except NotReached:
            return None

    def health(self) -> dict:
        return self.request("GET", "/v1/health").body.get("health", {})
