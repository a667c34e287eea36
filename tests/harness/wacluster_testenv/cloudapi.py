"""A local WhatsApp Cloud API for tests and the demo: the endpoints the Cloud driver calls, answering
as Meta's does, never shipped in the product.

- `POST /{version}/{phone_number_id}/messages`: the bearer token is checked (401, code 190), the
  body validated with cloudapi_models.py (400, code 100, the reason in error_data.details), the
  account's messages per second enforced (130429) and the per-recipient pair rate limit (131056);
  an accepted send answers `{"messaging_product", "contacts": [{input, wa_id}], "messages":
  [{"id": "wamid.…"}]}` and is recorded under its `biz_opaque_callback_data`, so a test counts
  duplicates.
- `GET /{version}/{phone_number_id}`: the phone number's fields (how a client checks its token).
- `POST /{version}/{phone_number_id}/register` (`messaging_product`, `pin`): registers the number;
  the first PIN becomes its two-step verification PIN, a different one later is refused (133005).
- `POST /{version}/{phone_number_id}/media` (multipart upload), `GET /{version}/{media_id}` and the
  download URL it names.
- Status webhooks (sent, delivered, read, failed) POSTed to the configured URL, signed
  `X-Hub-Signature-256: sha256=<HMAC-SHA256 of the raw body with the app secret>`, carrying the
  send's biz_opaque_callback_data; automatically after each send (`auto_statuses`) or on request.
- Inbound messages of every type a user can send (cloudapi_inbound.py) POSTed the same way on
  request, signed, wrongly signed or unsigned (`/_control/inbound`), their media downloadable.
  `webhook_verify_tls` False accepts the receiver's self-signed certificate (local webapps).
- `/_control/...`: read the sends, change the limits, inject 5xx answers, Cloud error codes or
  latency into the next sends, send a status webhook, reset.

Every error is Meta's shape `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`.
An error_subcode Meta's document shows is used (190: 463, 4: 2446079, an unknown object: 33);
elsewhere it is 0, which a client must not read meaning into."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections import defaultdict, deque
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, AsyncIterator, Callable

import aiohttp
from aiohttp import web
from pydantic import ValidationError

from wacluster_testenv import cloudapi_inbound
from wacluster_testenv.cloudapi_models import MESSAGE

DEFAULT_PHONE_NUMBER_ID = "106540352242922"
DEFAULT_DISPLAY_PHONE_NUMBER = "15550783881"
DEFAULT_WABA_ID = "102290129340398"
# Meta's default throughput per phone number, and its pair rate limit: a burst of 45 messages to
# one recipient within 6 seconds, then about one every 6 seconds.
DEFAULT_MESSAGES_PER_SECOND = 80
DEFAULT_PAIR_MESSAGES = 45
DEFAULT_PAIR_WINDOW = 6.0
MAX_LATENCY = 60.0
WEBHOOK_ATTEMPTS = 3
STATUSES = ("sent", "delivered", "read", "failed")
SIGNINGS = ("signed", "wrongly_signed", "unsigned")


@dataclass
class Send:
    """One accepted send."""
    wamid: str
    callback_data: str | None
    to: str
    type: str
    body: dict[str, Any]
    at: float


@dataclass
class Fault:
    """Applied to the next `count` sends (to `to` only, when set): a delay, then an HTTP status
    (5xx: a server error) or a Cloud error code answered instead of the send."""
    count: int = 1
    latency: float = 0.0
    status: int | None = None
    code: int | None = None
    to: str | None = None


@dataclass
class CloudApi:
    access_token: str
    app_secret: str
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID
    display_phone_number: str = DEFAULT_DISPLAY_PHONE_NUMBER
    messages_per_second: int = DEFAULT_MESSAGES_PER_SECOND
    pair_messages: int = DEFAULT_PAIR_MESSAGES
    pair_window: float = DEFAULT_PAIR_WINDOW
    webhook_url: str | None = None
    auto_statuses: tuple[str, ...] = ()
    webhook_verify_tls: bool = True
    clock: Callable[[], float] = time.monotonic
    sends: list[Send] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # clock() of every send request counted, refused or not
    upload_latency: float = 0.0  # seconds each media upload takes (tests of uploads under way)
    faults: list[Fault] = field(default_factory=list)
    webhook_deliveries: list[dict[str, Any]] = field(default_factory=list)
    media: dict[str, dict[str, Any]] = field(default_factory=dict)
    media_calls: list[str] = field(default_factory=list)  # paths of media lookups and downloads, in order
    # Registration (POST /{version}/{phone-number-id}/register): the number's two-step verification
    # PIN (None: not set yet; the first register sets it, as Meta's does) and whether it is registered.
    two_step_pin: str | None = None
    registered: bool = False
    code_verification_status: str = "VERIFIED"
    _recent: deque[float] = field(default_factory=deque)
    _recent_by_recipient: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _webhooks: asyncio.Queue | None = None

    # --- what tests read -------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Accepted sends per biz_opaque_callback_data."""
        counts: dict[str, int] = defaultdict(int)
        for send in self.sends:
            if send.callback_data is not None:
                counts[send.callback_data] += 1
        return dict(counts)

    def duplicates(self) -> dict[str, int]:
        return {key: n for key, n in self.counts().items() if n > 1}

    def find(self, *, callback_data: str | None = None, wamid: str | None = None) -> Send | None:
        for send in reversed(self.sends):
            if (wamid is not None and send.wamid == wamid) or \
                    (callback_data is not None and send.callback_data == callback_data):
                return send
        return None

    # --- the application -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=100 * 1024 * 1024)
        app.cleanup_ctx.append(self._webhook_sender)
        app.router.add_get("/_control/sends", self._control_sends)
        app.router.add_post("/_control/config", self._control_config)
        app.router.add_post("/_control/faults", self._control_faults)
        app.router.add_post("/_control/statuses", self._control_statuses)
        app.router.add_post("/_control/inbound", self._control_inbound)
        app.router.add_get("/_control/webhooks", self._control_webhooks)
        app.router.add_post("/_control/reset", self._control_reset)
        app.router.add_post("/{version}/{phone_number_id}/messages", self._messages)
        app.router.add_post("/{version}/{phone_number_id}/media", self._upload)
        app.router.add_post("/{version}/{phone_number_id}/register", self._register)
        app.router.add_get("/_media/{media_id}", self._media_download)
        app.router.add_get("/{version}/{media_id}", self._media_info)
        return app

    async def _messages(self, request: web.Request) -> web.Response:
        # Throughput is counted by when requests arrive, and decided then: a send held by an
        # injected latency took its place in the second it arrived in (checked after the delay,
        # against sends that came meanwhile, it was refused although it had come within the limit).
        # A send that then fails (an injected error, an invalid body) gives its place back.
        arrived = self.clock()
        refused = self._refuse_caller(request)
        if refused is not None:
            return refused
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return cloud_error(400, 100, "(#100) The request body is not JSON")
        to = body.get("to") if isinstance(body, dict) else None
        self.arrivals.append(arrived)
        if not self._within(self._recent, arrived, 1.0, self.messages_per_second):
            return cloud_error(400, 130429, "(#130429) Rate limit hit",
                               details=f"Cloud API message throughput ({self.messages_per_second}/s) has been reached.")
        pair = self._recent_by_recipient[to] if isinstance(to, str) else None
        if pair is not None and not self._within(pair, arrived, self.pair_window, self.pair_messages):
            return cloud_error(400, 131056, "(#131056) (Business Account, Consumer Account) pair rate limit hit",
                               details="Message failed to send because there were too many messages sent from "
                                       "this phone number to the same phone number in a short period of time.")
        self._recent.append(arrived)
        if pair is not None:
            pair.append(arrived)
        failure = await self._fail_or_validate(to, body)
        if isinstance(failure, web.Response):
            _give_back(self._recent, arrived)
            if pair is not None:
                _give_back(pair, arrived)
            return failure
        message = failure
        send = Send(_wamid(), message.biz_opaque_callback_data, message.to, message.type, body, time.time())
        self.sends.append(send)
        for status in self.auto_statuses:
            self.queue_status(send, status)
        return web.json_response({"messaging_product": "whatsapp",
                                  "contacts": [{"input": message.to, "wa_id": message.to.lstrip("+")}],
                                  "messages": [{"id": send.wamid}]})

    async def _fail_or_validate(self, to: Any, body: Any) -> Any:
        """The injected fault's answer for this send, or the validation error, or the valid message."""
        fault = self._take_fault(to)
        if fault is not None:
            await asyncio.sleep(min(fault.latency, MAX_LATENCY))
            if fault.status is not None:
                return cloud_error(fault.status, 2, "An unexpected error has occurred. Please retry your request later.",
                                   transient=True)
            if fault.code is not None:
                return cloud_error(400, fault.code, f"(#{fault.code}) injected by the local Cloud API")
        try:
            return MESSAGE.validate_python(body)
        except ValidationError as exc:
            return cloud_error(400, 100, "(#100) Invalid parameter", details=_describe(exc))

    def _refuse_caller(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization", "") != f"Bearer {self.access_token}":
            return cloud_error(401, 190, "Invalid OAuth access token - Cannot parse access token", subcode=463)
        if request.match_info["phone_number_id"] != self.phone_number_id:
            return cloud_error(400, 100, f"Unsupported post request. Object with ID "
                                         f"'{request.match_info['phone_number_id']}' does not exist", subcode=33)
        return None

    def _take_fault(self, to: Any) -> Fault | None:
        for fault in self.faults:
            if fault.to is None or fault.to == to:
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    @staticmethod
    def _within(times: deque[float], now: float, window: float, limit: int) -> bool:
        """True when one more send in the window stays within the limit (sliding window)."""
        while times and times[0] <= now - window:
            times.popleft()
        return len(times) < limit

    async def _upload(self, request: web.Request) -> web.Response:
        refused = self._refuse_caller(request)
        if refused is not None:
            return refused
        if not request.content_type.startswith("multipart/"):
            return cloud_error(400, 100, "(#100) Upload a multipart/form-data body")
        form = await request.post()
        upload = form.get("file")
        if form.get("messaging_product") != "whatsapp" or not hasattr(upload, "file"):
            return cloud_error(400, 100, "(#100) The parameters messaging_product=whatsapp and file are required")
        data = upload.file.read()
        if self.upload_latency:
            await asyncio.sleep(min(self.upload_latency, MAX_LATENCY))
        media_id = str(secrets.randbelow(9 * 10 ** 15) + 10 ** 15)
        self.media[media_id] = {"data": data, "mime_type": str(form.get("type") or upload.content_type),
                                "sha256": hashlib.sha256(data).hexdigest(), "file_size": len(data)}
        return web.json_response({"id": media_id})

    async def _register(self, request: web.Request) -> web.Response:
        refused = self._refuse_caller(request)
        if refused is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            return cloud_error(400, 100, "(#100) The request body is not JSON")
        body = body if isinstance(body, dict) else {}
        pin = body.get("pin")
        if body.get("messaging_product") != "whatsapp" or not isinstance(pin, str) or not re.fullmatch("[0-9]{6}", pin):
            return cloud_error(400, 100, "(#100) The parameters messaging_product=whatsapp and a 6-digit pin "
                                         "are required")
        if self.two_step_pin is not None and pin != self.two_step_pin:
            return cloud_error(400, 133005, "Two step verification PIN Mismatch",
                               details="The two-step verification PIN is not the one set for this number")
        self.two_step_pin, self.registered = pin, True
        return web.json_response({"success": True})

    async def _media_info(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization", "") != f"Bearer {self.access_token}":
            return cloud_error(401, 190, "Invalid OAuth access token - Cannot parse access token", subcode=463)
        media_id = request.match_info["media_id"]
        if media_id != self.phone_number_id:
            self.media_calls.append(request.path)
        if media_id == self.phone_number_id:
            # GET /{version}/{phone-number-id}: the phone number's fields (the driver's credentials check).
            return web.json_response({"verified_name": "wacluster test", "code_verification_status": self.code_verification_status,
                                      "display_phone_number": self.display_phone_number,
                                      "quality_rating": "GREEN", "platform_type": "CLOUD_API",
                                      "throughput": {"level": "STANDARD"}, "id": self.phone_number_id})
        if media_id not in self.media:
            return cloud_error(400, 100, f"Unsupported get request. Object with ID '{media_id}' does not exist",
                               subcode=33)
        info = self.media[media_id]
        return web.json_response({"messaging_product": "whatsapp", "url": f"{request.url.origin()}/_media/{media_id}",
                                  "mime_type": info["mime_type"], "sha256": info["sha256"],
                                  "file_size": info["file_size"], "id": media_id})

    async def _media_download(self, request: web.Request) -> web.Response:
        # Meta's download URL needs the access token too.
        if request.headers.get("Authorization", "") != f"Bearer {self.access_token}":
            return cloud_error(401, 190, "Invalid OAuth access token - Cannot parse access token", subcode=463)
        self.media_calls.append(request.path)
        info = self.media.get(request.match_info["media_id"])
        if info is None:
            raise web.HTTPNotFound()
        return web.Response(body=info["data"], content_type=info["mime_type"])

    # --- status webhooks -------------------------------------------------------------------------

    def queue_status(self, send: Send, status: str, error: dict[str, Any] | None = None) -> None:
        """Queue a signed status webhook about `send` (sent in order by one worker)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        if self._webhooks is None:
            raise RuntimeError("the application is not running")
        self._webhooks.put_nowait((self.status_payload(send, status, error), "signed"))

    def queue_inbound(self, kind: str, signing: str = "signed", **fields) -> dict[str, Any]:
        """Queue a webhook of one inbound message of `kind` (cloudapi_inbound.TYPES) from a user;
        a media message's media is stored here, downloadable by its id. Returns the body."""
        if signing not in SIGNINGS:
            raise ValueError(f"signing must be one of {SIGNINGS}")
        if self._webhooks is None:
            raise RuntimeError("the application is not running")
        media = None
        if kind in cloudapi_inbound.MEDIA:
            data = fields.pop("data", None) or os.urandom(1024)
            media = str(secrets.randbelow(9 * 10 ** 15) + 10 ** 15)
            self.media[media] = {"data": data, "mime_type": cloudapi_inbound.MEDIA[kind],
                                 "sha256": hashlib.sha256(data).hexdigest(), "file_size": len(data)}
        message = cloudapi_inbound.message(kind, business=self.display_phone_number, media=media, **fields)
        if media is not None:
            message[message["type"]]["sha256"] = self.media[media]["sha256"]
        payload = cloudapi_inbound.inbound(message, self.phone_number_id)
        self._webhooks.put_nowait((payload, signing))
        return payload

    def queue_payload(self, payload: dict[str, Any], signing: str = "signed") -> None:
        """Queue any webhook body as is (a retry of an earlier one, an error notification)."""
        if self._webhooks is None:
            raise RuntimeError("the application is not running")
        self._webhooks.put_nowait((payload, signing))

    def status_payload(self, send: Send, status: str, error: dict[str, Any] | None = None) -> dict[str, Any]:
        item: dict[str, Any] = {"id": send.wamid, "status": status, "timestamp": str(int(time.time())),
                                "recipient_id": send.to.lstrip("+")}
        if send.callback_data is not None:
            item["biz_opaque_callback_data"] = send.callback_data
        if status == "failed":
            error = error or {"code": 131026, "title": "Message undeliverable."}
            item["errors"] = [{"code": error["code"], "title": error["title"], "message": error["title"],
                               "error_data": {"details": error.get("details", error["title"])}}]
        else:
            item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "utility"}
        return {"object": "whatsapp_business_account", "entry": [{"id": DEFAULT_WABA_ID, "changes": [{
            "value": {"messaging_product": "whatsapp",
                      "metadata": {"display_phone_number": self.display_phone_number,
                                   "phone_number_id": self.phone_number_id},
                      "statuses": [item]},
            "field": "messages"}]}]}

    async def _webhook_sender(self, app: web.Application) -> AsyncIterator[None]:
        self._webhooks = asyncio.Queue()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            worker = asyncio.create_task(self._send_webhooks(session), name="cloudapi-webhooks")
            try:
                yield
            finally:
                worker.cancel()
                try:
                    await worker
                except asyncio.CancelledError:
                    pass
        self._webhooks = None

    async def _send_webhooks(self, session: aiohttp.ClientSession) -> None:
        while True:
            payload, signing = await self._webhooks.get()
            raw = json.dumps(payload, separators=(",", ":")).encode()
            delivery: dict[str, Any] = {"payload": payload, "url": self.webhook_url, "status": None, "attempts": 0,
                                        "signing": signing}
            self.webhook_deliveries.append(delivery)
            if self.webhook_url is None:
                continue
            headers = {"Content-Type": "application/json"}
            if signing == "signed":
                headers["X-Hub-Signature-256"] = signature(self.app_secret, raw)
            elif signing == "wrongly_signed":
                headers["X-Hub-Signature-256"] = signature(self.app_secret + "-not-it", raw)
            for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
                delivery["attempts"] = attempt
                try:
                    async with session.post(self.webhook_url, data=raw, headers=headers,
                                            ssl=None if self.webhook_verify_tls else False) as resp:
                        delivery["status"] = resp.status
                        if resp.status < 500:
                            break
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    delivery["status"] = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(0.2 * attempt)

    # --- control ---------------------------------------------------------------------------------

    async def _control_sends(self, request: web.Request) -> web.Response:
        return web.json_response({"sends": [{k: v for k, v in asdict(s).items() if k != "body"} for s in self.sends],
                                  "arrivals": self.arrivals,
                                  "counts": self.counts(), "duplicates": self.duplicates()})

    async def _control_config(self, request: web.Request) -> web.Response:
        changes = await request.json()
        for name in ("messages_per_second", "pair_messages", "pair_window", "webhook_url", "auto_statuses",
                     "webhook_verify_tls"):
            if name in changes:
                value = changes[name]
                setattr(self, name, tuple(value) if name == "auto_statuses" else value)
        return web.json_response(self.config())

    def config(self) -> dict[str, Any]:
        return {"messages_per_second": self.messages_per_second, "pair_messages": self.pair_messages,
                "pair_window": self.pair_window, "webhook_url": self.webhook_url,
                "auto_statuses": list(self.auto_statuses), "phone_number_id": self.phone_number_id}

    async def _control_faults(self, request: web.Request) -> web.Response:
        try:
            fault = Fault(**await request.json())
        except TypeError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.faults.append(fault)
        return web.json_response({"faults": [asdict(f) for f in self.faults]})

    async def _control_statuses(self, request: web.Request) -> web.Response:
        wanted = await request.json()
        send = self.find(callback_data=wanted.get("biz_opaque_callback_data"), wamid=wanted.get("wamid"))
        if send is None:
            return web.json_response({"error": "no such send"}, status=404)
        try:
            self.queue_status(send, wanted.get("status", "delivered"), wanted.get("error"))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"queued": send.wamid})

    async def _control_inbound(self, request: web.Request) -> web.Response:
        wanted = await request.json()
        try:
            payload = self.queue_inbound(wanted.pop("type", "text"), wanted.pop("signing", "signed"), **wanted)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"queued": payload})

    async def _control_webhooks(self, request: web.Request) -> web.Response:
        return web.json_response({"deliveries": self.webhook_deliveries})

    async def _control_reset(self, request: web.Request) -> web.Response:
        self.sends.clear()
        self.faults.clear()
        self.webhook_deliveries.clear()
        self.arrivals.clear()
        self._recent.clear()
        self._recent_by_recipient.clear()
        return web.json_response({"reset": True})


def cloud_error(status: int, code: int, message: str, *, subcode: int = 0, details: str | None = None,
                transient: bool = False) -> web.Response:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code,
                             "error_subcode": subcode, "fbtrace_id": _fbtrace_id()}
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    if transient:
        error["is_transient"] = True
    return web.json_response({"error": error}, status=status)


def signature(app_secret: str, raw_body: bytes) -> str:
    """The X-Hub-Signature-256 header value of a webhook body."""
    return "sha256=" + hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()[:5])


def _give_back(times: deque[float], stamp: float) -> None:
    try:
        times.remove(stamp)
    except ValueError:  # already out of the window
        pass


def _wamid() -> str:
    # URL-safe: a wamid may end up in a path or a query string of the caller.
    return "wamid." + base64.urlsafe_b64encode(os.urandom(30)).decode()


def _fbtrace_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(15)).decode()[:23]


@asynccontextmanager
async def running(cloud: CloudApi, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve `cloud` until the block ends; yields its base URL (port 0: a free one)."""
    runner = web.AppRunner(cloud.app())
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()


def add_parser(actions) -> None:
    """`wacluster testenv cloudapi`: serve the local Cloud API in the foreground."""
    parser = actions.add_parser("cloudapi", help="serve a local WhatsApp Cloud API (tests, demo)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--phone-number-id", default=DEFAULT_PHONE_NUMBER_ID)
    parser.add_argument("--messages-per-second", type=int, default=DEFAULT_MESSAGES_PER_SECOND)
    parser.add_argument("--webhook-url", default=None, help="where status webhooks are POSTed")
    parser.add_argument("--auto-statuses", default="", help="statuses sent after each send, e.g. sent,delivered")
    parser.add_argument("--token-env", default="CLOUDAPI_ACCESS_TOKEN",
                        help="environment variable holding the accepted access token")
    parser.add_argument("--app-secret-env", default="CLOUDAPI_APP_SECRET",
                        help="environment variable holding the app secret that signs webhooks")


def serve(args) -> int:
    token, secret = os.environ.get(args.token_env), os.environ.get(args.app_secret_env)
    if not token or not secret:
        print(f"set {args.token_env} and {args.app_secret_env} (the access token and app secret to use)")
        return 2
    cloud = CloudApi(access_token=token, app_secret=secret, phone_number_id=args.phone_number_id,
                     messages_per_second=args.messages_per_second, webhook_url=args.webhook_url,
                     auto_statuses=tuple(s for s in args.auto_statuses.split(",") if s))
    print(f"local Cloud API on http://{args.host}:{args.port}/v23.0/{args.phone_number_id}/messages")
    web.run_app(cloud.app(), host=args.host, port=args.port, print=None)
    return 0
