"""The Cloud API driver: one serving session's sends through Meta's WhatsApp Cloud API over HTTPS
(a `runtime.gateway.Gateway`).

- `open` checks the token and the phone number once (`GET /{version}/{phone-number-id}`). A token
  or account the Cloud API refuses does not refuse the shard: the session starts *paused*.
- Each message becomes the body `domain/cloud_messages.cloud_message` makes (our id in
  `biz_opaque_callback_data`) and is POSTed to `/{version}/{phone-number-id}/messages`: up to
  `concurrency` at once, one at a time per recipient (a recipient's messages keep their order),
  paced by `domain/pacing.SendPacer` at the shard's share of the account's budget (each send
  counted from when its request leaves: `gateway.sent_tracing`).
- A message naming media by our id gets its Cloud media ids first (`cloud_media.CloudMedia`:
  uploaded once, then cached); no send is started meanwhile, and its recipient's later messages
  wait. A refused upload is classified and handled as a refused send.
- Before a send leaves, its row is marked started (`CloudLedger.start`, fenced like a claim);
  the answer's wamid is stored with `delivered`; a permanent error ends it `failed` with its
  on-premises status webhook. The Cloud API has no idempotency key: a send whose answer never
  came (or whose recording failed, or whose session ended meanwhile) is *in doubt*.
- Errors (`domain/cloud_errors.classify`): RETRY never drops a message. Scope MESSAGE and
  RECIPIENT hold that recipient's queue with exponential backoff (so its later messages wait and
  the order holds); scope ACCOUNT lowers the pace by a fifth and widens the pacer's jitter
  margin (once for the sends released before that: `SendPacer.throttled`). PAUSE_ACCOUNT stops
  every send of the session, reports `paused` (in `/v1/health`), logs once, and checks the
  credentials again every `pause_check_every` seconds; sending resumes when they pass.
- `already_delivered` (asked by the backlog scan about rows some session claimed before): rows
  delivered or failed meanwhile need nothing; rows whose send had started are waited for until
  `in_doubt_window` seconds after that start (a status webhook may resolve them), then sent
  again and counted (`wacluster_cloud_in_doubt_resent_total`): at least once, not exactly once.

The access token is sent only in the Authorization header; it is never logged.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import aiohttp

from wacluster.domain.cloud_errors import Action, OnPremError, Scope, SendFailure, classify
from wacluster.domain.cloud_messages import cloud_message, media_to_upload, with_cloud_media
from wacluster.domain.pacing import SendPacer
from wacluster.runtime import metrics
from wacluster.runtime.coreapp.cloud_ledger import CloudLedger
from wacluster.runtime.coreapp.cloud_media import CloudMedia, UploadFailed
from wacluster.runtime.gateway import CloudSettings, graph_call
from wacluster.runtime.gateway_link import GatewayClosed

log = logging.getLogger("wacluster.coreapp")

REQUEST_TIMEOUT = 20.0     # one HTTP call; past it the send is in doubt and retried
CHECK_TIMEOUT = 10.0       # the credentials check
BACKOFF_FIRST = 0.5        # seconds before the first retry of a message, doubled each time
BACKOFF_MAX = 30.0
PAIR_LIMIT_WAIT = 6.0      # Meta's pair rate limit lets about one message per 6 s through
RECORD_ATTEMPTS = 5        # tries to record a send's outcome before it is left in doubt
RECORD_RETRY = 0.2


@dataclass(eq=False)  # one batch is itself only
class _Batch:
    future: asyncio.Future
    waiting: set[str]
    settled: list[str] = field(default_factory=list)

    def done(self, message_id: str, settled: bool) -> None:
        self.waiting.discard(message_id)
        if settled:
            self.settled.append(message_id)
        if not self.waiting and not self.future.done():
            self.future.set_result(self.settled)


@dataclass(eq=False)
class _Item:
    id: str
    to: str
    body: dict[str, Any] | None       # the Cloud request body; None when it has none (failed at once)
    batch: _Batch
    unsendable: OnPremError | None = None
    attempts: int = 0
    released_at: float | None = None  # monotonic: when the pacer last let it go


class CloudGateway:
    settles_itself = True

    def __init__(self, http: aiohttp.ClientSession, settings: CloudSettings, ledger: CloudLedger, *,
                 rate: float, in_doubt_window: float, pause_check_every: float,
                 may_send: Callable[[], bool], on_paused: Callable[[str | None], Awaitable[None]],
                 on_closed: Callable[[str], Awaitable[None]], media: CloudMedia | None = None,
                 concurrency: int = 64) -> None:
        self.http = http
        self.media = media  # None: media by our id cannot be sent (fails as unsendable)
        self.settings = settings
        self.ledger = ledger
        self.pacer = SendPacer(rate)
        self.in_doubt_window = in_doubt_window
        self.pause_check_every = pause_check_every
        self.may_send = may_send
        self.on_paused = on_paused
        self.on_closed = on_closed
        self.concurrency = concurrency
        self.closed_reason: str | None = None
        self.paused_reason: str | None = None
        self._queues: dict[str, deque[_Item]] = {}   # per recipient, in arrival order
        self._not_before: dict[str, float] = {}      # recipient -> monotonic time of its next try
        self._busy: set[str] = set()                 # recipients with a send in flight
        self._resending: set[str] = set()            # in doubt and unresolved: their next send is a resend
        self._stopping = False                       # a planned handoff: no new send starts
        self._batches: set[_Batch] = set()
        self._tasks: set[asyncio.Task] = set()
        self._changed = asyncio.Event()
        self._dispatcher: asyncio.Task | None = None
        self._checker: asyncio.Task | None = None

    # --- the Gateway interface ------------------------------------------------------------------

    async def open(self) -> None:
        failure = await self._check()
        if failure is not None and failure.action is not Action.PAUSE_ACCOUNT:
            raise GatewayClosed(f"the Cloud API did not confirm phone number {self.settings.phone_number_id}: "
                                f"{failure.reason}")
        metrics.CLOUD_SEND_RATE.set(self.pacer.rate)
        self._dispatcher = asyncio.create_task(self._guarded(self._dispatch(), "dispatcher"), name="cloud-dispatcher")
        if failure is not None:
            await self._pause(failure.reason)

    async def send(self, messages: list[dict]) -> asyncio.Future:
        if self.closed_reason:
            raise GatewayClosed(self.closed_reason)
        future = asyncio.get_running_loop().create_future()
        if self._stopping:  # draining for a handoff: none of it starts here
            future.set_result([])
            return future
        batch = _Batch(future, {m["id"] for m in messages})
        self._batches.add(batch)
        future.add_done_callback(lambda _: self._batches.discard(batch))
        for frame in messages:
            item = _Item(frame["id"], frame["to"], None, batch)
            try:
                item.body = cloud_message(frame["id"], frame["body"])
                if media_to_upload(item.body) and self.media is None:
                    item.unsendable = OnPremError(1000, "Generic error", "this coreapp has no media directory to "
                                                  "upload media sent by id from: send it by link")
            except (ValueError, KeyError, TypeError) as exc:
                item.unsendable = OnPremError(1000, "Generic error", f"no Cloud API form for this message: {exc}")
            self._queues.setdefault(item.to, deque()).append(item)
        if not messages:
            future.set_result([])
        self._changed.set()
        self._depth()
        return future

    async def already_delivered(self, ids: list[str]) -> set[str]:
        """Delivered or failed rows need nothing. Rows whose send started are waited for until the
        in-doubt window after that start has passed; those still unresolved are sent again."""
        while True:
            states = await self.ledger.states(ids, self.in_doubt_window)
            waiting = [s.in_doubt_for for s in states if s.in_doubt_for]
            if not waiting:
                break
            await asyncio.sleep(min(0.5, max(waiting)))
        # Counted when a resend really leaves (`_dispatch`): a scan may ask twice about one row, or
        # end with its session before anything is sent (the metric once counted both).
        resent = [s.id for s in states if s.in_doubt_for == 0 and s.id not in self._resending]
        if resent:
            self._resending.update(resent)
            log.warning("%d message(s) were being sent when their session ended and nothing resolved them within "
                        "%gs; sending them again (the recipient may get them twice)", len(resent), self.in_doubt_window)
        return {s.id for s in states if s.status in ("delivered", "failed")}

    def abandon(self, future: asyncio.Future) -> None:
        for queue in self._queues.values():
            for item in [i for i in queue if i.batch.future is future and i.to not in self._busy]:
                queue.remove(item)
        future.cancel()
        self._depth()

    def stop_starting(self) -> None:
        """Start no new send. A recipient whose send is under way keeps only that one (it may be
        marked started and waiting for its pacer slot: it still goes, so nothing is left in doubt);
        everything else leaves the driver unsettled, not started, for the successor. Before, a
        planned handoff waited for the whole paced queue (0.4 s and more of downtime at 80 a
        second, against 0.02 s with the sandbox)."""
        self._stopping = True
        for to, queue in list(self._queues.items()):
            keep = 1 if to in self._busy else 0
            for item in list(queue)[keep:]:
                self._forget(item, settled=False)
        self._changed.set()

    async def close(self) -> None:
        """Stop at once. Sends in flight are cut off: their rows stay started, in doubt for the
        next session."""
        self.closed_reason = self.closed_reason or "closed by the coreapp"
        tasks = [t for t in (self._dispatcher, self._checker, *self._tasks)
                 if t is not None and t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for batch in list(self._batches):
            if not batch.future.done():
                batch.future.set_exception(GatewayClosed(self.closed_reason))
        self._queues.clear()
        self._depth()
        metrics.CLOUD_PAUSED.set(0)

    async def _guarded(self, work: Awaitable[None], what: str) -> None:
        """Run one of the driver's tasks; if it fails, the driver closes and says so (the coreapp
        fences the session: its claims go to the next session), so no task dies silently."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("the Cloud driver's %s failed", what)
            if self.closed_reason is None:
                self.closed_reason = f"the Cloud driver's {what} failed: {exc!r}"
                await self.on_closed(self.closed_reason)

    # --- sending ---------------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        """Pick the recipients whose next message may go, mark those sends started (one
        statement), and start each at the pacer's time."""
        while True:
            self._changed.clear()
            now = time.monotonic()
            ready = [] if self._stopping or self.paused_reason or not self.may_send() else self._ready(now)
            if not ready:
                await self._wait_change(now)
                continue
            allowed = await self._start([queue[0] for queue in ready])
            for item in allowed:
                # Asked again after every sleep: a wait may be only a look (an earlier send has not
                # left yet), and a throttle meanwhile moves the next slot.
                while (wait := self.pacer.wait(time.monotonic())) > 0:
                    await asyncio.sleep(wait)
                if self.paused_reason or not self.may_send():
                    self._busy.discard(item.to)  # started on paper only: in doubt if the session ends now
                    continue
                item.released_at = time.monotonic()
                ticket = self.pacer.take(item.released_at)
                if item.id in self._resending:
                    self._resending.discard(item.id)
                    metrics.CLOUD_IN_DOUBT_RESENT.inc()
                task = asyncio.create_task(self._guarded(self._post(item, ticket), "send"), name="cloud-send")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _ready(self, now: float) -> list[deque[_Item]]:
        room = self.concurrency - len(self._busy)
        group = max(1, int(self.pacer.rate / 10))  # about 100 ms of sends per statement
        ready = []
        for to, queue in self._queues.items():
            if len(ready) >= min(room, group):
                break
            if queue and to not in self._busy and self._not_before.get(to, 0.0) <= now:
                ready.append(queue)
        return ready

    async def _wait_change(self, now: float) -> None:
        waits = [t - now for to, t in self._not_before.items() if to in self._queues and to not in self._busy]
        timeout = max(0.01, min(waits)) if waits else None
        if not self.paused_reason and not self.may_send():
            timeout = 0.05  # the lease decides; the fence closes this driver if it is gone
        try:
            await asyncio.wait_for(self._changed.wait(), timeout=timeout)
        except asyncio.TimeoutError:
            pass

    async def _start(self, heads: list[_Item]) -> list[_Item]:
        for item in heads:
            self._busy.add(item.to)
        for item in [i for i in heads if i.unsendable is not None]:
            heads.remove(item)
            await self._end(item, Action.FAIL, item.unsendable)
        for item in [i for i in heads if media_to_upload(i.body)]:
            # Its media first (no send is started for it meanwhile, so nothing is in doubt); the
            # recipient stays busy until then, which keeps the order of its messages.
            heads.remove(item)
            task = asyncio.create_task(self._guarded(self._upload_media(item), "media upload"),
                                       name="cloud-media-upload")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            allowed = set(await self.ledger.start([item.id for item in heads]))
        except Exception as exc:  # the database is away: nothing was started, try again shortly
            log.warning("could not record %d send(s) as started (%s); retrying", len(heads), exc)
            for item in heads:
                self._busy.discard(item.to)
                self._not_before[item.to] = time.monotonic() + 1.0
            return []
        for item in [i for i in heads if i.id not in allowed]:
            # No longer this session's to send (the lease or the claim is gone): out of hand.
            heads.remove(item)
            self._forget(item, settled=False)
        return heads

    async def _upload_media(self, item: _Item) -> None:
        """Swap the item's media markers for Cloud media ids (uploading what is not cached), then
        let the dispatcher send it; a refused upload is handled as a refused send."""
        assert self.media is not None
        try:
            cloud_ids = await self.media.cloud_ids(media_to_upload(item.body))
        except UploadFailed as exc:
            await self._refused(item, exc.failure)
            return
        except Exception as exc:  # the database or the media volume is away: try again shortly
            log.warning("message %s: could not prepare its media (%s); retrying", item.id, exc,
                        extra={"message_id": item.id})
            self._busy.discard(item.to)
            self._not_before[item.to] = time.monotonic() + 1.0
            self._changed.set()
            return
        item.body = with_cloud_media(item.body, cloud_ids)
        self._busy.discard(item.to)
        self._changed.set()

    async def _post(self, item: _Item, ticket: int) -> None:
        def left() -> None:
            self.pacer.left(ticket, time.monotonic())

        try:
            status, data = await graph_call(self.http, self.settings, "POST",
                                            self.settings.url(self.settings.phone_number_id, "messages"),
                                            REQUEST_TIMEOUT, on_sent=left, json=item.body)
        finally:
            left()  # it never left (no connection), or it did and this changes nothing
        wamid = _wamid(data) if status == 200 else None
        if wamid is not None:
            await self._delivered(item, wamid)
        else:
            await self._refused(item, classify(status, data if isinstance(data, dict) else None))

    async def _delivered(self, item: _Item, wamid: str) -> None:
        for attempt in range(RECORD_ATTEMPTS):
            try:
                await self.ledger.sent({item.id: wamid})
                break
            except Exception as exc:
                if attempt == RECORD_ATTEMPTS - 1:
                    log.warning("message %s was sent (%s) but could not be recorded (%s); it stays in doubt",
                                item.id, wamid, exc, extra={"message_id": item.id})
                    self._forget(item, settled=False)
                    return
                await asyncio.sleep(RECORD_RETRY)
        metrics.CLOUD_SENDS.labels(outcome="delivered").inc()
        self._forget(item, settled=True)

    async def _refused(self, item: _Item, failure: SendFailure) -> None:
        if failure.action is Action.FAIL:
            await self._end(item, Action.FAIL, failure.on_prem)
            return
        self._busy.discard(item.to)
        if failure.action is Action.PAUSE_ACCOUNT:
            await self._pause(failure.reason)
            return
        metrics.CLOUD_SENDS.labels(outcome="retried").inc()
        item.attempts += 1
        now = time.monotonic()
        backoff = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (item.attempts - 1)) * random.uniform(0.8, 1.2)
        if failure.scope is Scope.ACCOUNT:
            metrics.CLOUD_THROTTLED.inc()
            if self.pacer.throttled(now, item.released_at):
                log.warning("the Cloud API throttles the account (%s): sending at %.1f a second now",
                            failure.reason, self.pacer.rate)
            metrics.CLOUD_SEND_RATE.set(self.pacer.rate)
            self._not_before[item.to] = now  # the pacer makes everyone wait
        elif failure.scope is Scope.RECIPIENT:
            self._not_before[item.to] = now + max(backoff, PAIR_LIMIT_WAIT)
        else:
            self._not_before[item.to] = now + backoff
        if item.attempts & (item.attempts - 1) == 0:  # 1, 2, 4, 8...: enough to follow, not a flood
            log.warning("message %s to %s: %s (attempt %d)", item.id, item.to, failure.reason, item.attempts,
                        extra={"message_id": item.id})
        self._changed.set()

    async def _end(self, item: _Item, action: Action, error: OnPremError | None) -> None:
        """A permanent error: failed in the database with its status webhook, out of hand."""
        error = error or OnPremError(1000, "Generic error")
        for attempt in range(RECORD_ATTEMPTS):
            try:
                await self.ledger.failed(item.id, item.to, error)
                break
            except Exception as exc:
                if attempt == RECORD_ATTEMPTS - 1:
                    log.warning("could not record message %s as failed (%s); the backlog scan takes it again",
                                item.id, exc, extra={"message_id": item.id})
                    self._forget(item, settled=False)
                    return
                await asyncio.sleep(RECORD_RETRY)
        metrics.CLOUD_SENDS.labels(outcome="failed").inc()
        log.info("message %s to %s failed for good: %s %s", item.id, item.to, error.code, error.details or error.title,
                 extra={"message_id": item.id})
        self._forget(item, settled=True)

    def _forget(self, item: _Item, settled: bool) -> None:
        """The item leaves the driver: settled (recorded) or left to the backlog scan."""
        queue = self._queues.get(item.to)
        if queue is not None:
            try:
                queue.remove(item)
            except ValueError:
                pass
            if not queue:
                del self._queues[item.to]
                self._not_before.pop(item.to, None)
        self._busy.discard(item.to)
        item.batch.done(item.id, settled)
        self._changed.set()
        self._depth()

    def _depth(self) -> None:
        metrics.CLOUD_QUEUE_DEPTH.set(sum(len(q) for q in self._queues.values()))

    # --- pausing ---------------------------------------------------------------------------------

    async def _pause(self, reason: str) -> None:
        if self.paused_reason is None:
            self.paused_reason = reason
            metrics.CLOUD_PAUSED.set(1)
            log.error("sending paused for phone number %s: %s; checking the credentials again every %gs",
                      self.settings.phone_number_id, reason, self.pause_check_every)
            await self.on_paused(reason)
        if self._checker is None or self._checker.done():
            self._checker = asyncio.create_task(self._guarded(self._check_until_resumed(), "credentials check"),
                                                name="cloud-credentials-check")

    async def _check_until_resumed(self) -> None:
        while self.paused_reason is not None:
            await asyncio.sleep(self.pause_check_every)
            failure = await self._check()
            if failure is None:
                log.info("the Cloud API accepts the credentials of phone number %s again; sending resumes",
                         self.settings.phone_number_id)
                self.paused_reason = None
                metrics.CLOUD_PAUSED.set(0)
                await self.on_paused(None)
                self._changed.set()
            elif failure.action is Action.PAUSE_ACCOUNT and failure.reason != self.paused_reason:
                self.paused_reason = failure.reason
                log.error("sending still paused: %s", failure.reason)
                await self.on_paused(failure.reason)

    async def _check(self) -> SendFailure | None:
        """None when the Cloud API knows the phone number under this token, else its verdict."""
        status, data = await graph_call(self.http, self.settings, "GET",
                                        self.settings.url(self.settings.phone_number_id), CHECK_TIMEOUT)
        if status == 200:
            return None
        return classify(status, data if isinstance(data, dict) else None)


def _wamid(data: Any) -> str | None:
    try:
        wamid = data["messages"][0]["id"]
    except (KeyError, IndexError, TypeError):
        return None
    return wamid if isinstance(wamid, str) and wamid else None
