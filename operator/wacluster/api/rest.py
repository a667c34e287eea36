"""Request and response bodies of the webapp's REST API (the on-premises WhatsApp Business API
shapes). Unknown fields are errors, so typos never pass silently. The message content models live in
api/messages.py and are re-exported here."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, HttpUrl

from wacluster import __version__
from wacluster.api.messages import (  # noqa: F401  (re-exported: the message content models)
    MEDIA_ID_PATTERN, PHONE_PATTERN, Context, Hsm, Interactive, Location, Media, OutgoingMessage, Template, Text,
)
from wacluster.api.strict import Strict


class Meta(Strict):
    """The on-premises API's `meta` object, on every answer."""
    api_status: Literal["stable", "deprecated", "experimental"] = "stable"
    version: str = __version__


META = Meta().model_dump()


class MessageId(Strict):
    id: str


class MessagesResponse(Strict):
    messages: list[MessageId]
    meta: Meta | None = None


class AccountRequest(Strict):
    cc: str = Field(..., pattern=r"^[0-9]{1,3}$", description="Country calling code.")
    phone_number: str = Field(..., pattern=r"^[0-9]{4,14}$", description="Phone number without country code.")
    method: Literal["sms", "voice"] = "sms"
    cert: str = Field("", max_length=4096, description="Verified name certificate (base64).")
    pin: str | None = Field(None, pattern=r"^[0-9]{6}$")

    @property
    def phone(self) -> str:
        return f"+{self.cc}{self.phone_number}"


class VerifyRequest(Strict):
    code: str = Field(..., pattern=r"^[0-9]{6}$", description="The six-digit registration code.")


class ShardsRequest(Strict):
    cc: str = Field(..., pattern=r"^[0-9]{1,3}$")
    phone_number: str = Field(..., pattern=r"^[0-9]{4,14}$")
    shards: Literal[1, 2, 4, 8, 16, 32] = Field(..., description="Number of shards: 1, 2, 4, 8, 16 or 32.")
    pin: str | None = Field(None, pattern=r"^[0-9]{6}$")


class WebhookMessageStatuses(Strict):
    sent: bool | None = None
    delivered: bool | None = None
    read: bool | None = None


class Webhooks(Strict):
    url: HttpUrl | None = Field(None, description="Where inbound messages and statuses are POSTed.")
    max_concurrent_requests: Literal[6, 12, 18, 24] | None = Field(
        None, description="Concurrent webhook requests: 6 (default), 12, 18 or 24.")
    message: WebhookMessageStatuses | None = Field(None, description="Which message statuses are sent.")


MEDIA_KINDS = Literal["audio", "document", "voice", "video", "image", "sticker"]


class MediaSettings(Strict):
    auto_download: list[MEDIA_KINDS] | None = Field(None, description="Inbound media kinds downloaded at once.")


class GarbageCollector(Strict):
    media: bool | None = None
    messages: bool | None = None


class ApplicationSettings(Strict):
    """PATCH /v1/settings/application: every field the on-premises reference documents (those
    without meaning here are stored and returned), plus wacluster's database heartbeat."""
    heartbeat_interval: float | None = Field(None, ge=0.2, le=300, description="Seconds between master heartbeats.")
    unhealthy_interval: float | None = Field(None, ge=0.5, le=3600, description="Seconds of silence before failover.")
    db_heartbeat_interval: float | None = Field(None, ge=0.5, le=3600)
    db_unhealthy_after: float | None = Field(None, ge=1, le=7200)
    webhooks: Webhooks | None = None
    callback_persist: bool | None = None
    callback_backoff_delay_ms: int | None = Field(
        None, ge=0, le=86_400_000, description="First webhook retry delay in ms (default 3000); doubles per attempt.")
    max_callback_backoff_delay_ms: int | None = Field(
        None, ge=0, le=86_400_000, description="Longest webhook retry delay in ms (default 900000).")
    on_call_pager: str | None = Field(None, max_length=256, description="WhatsApp group told of critical errors.")
    pass_through: bool | None = None
    sent_status: bool | None = None
    media: MediaSettings | None = None
    notify_user_change_number: bool | None = None
    show_security_notifications: bool | None = None
    db_garbagecollector_enable: bool | None = None
    garbagecollector_enable: GarbageCollector | None = None
    skip_referral_media_download: bool | None = None
    axolotl_context_striping_disabled: bool | None = None
    webhook_payload_conversation_pricingmodel_disabled: bool | None = None


class ContactsRequest(Strict):
    blocking: Literal["wait", "no_wait"] = Field(
        "no_wait", description="wait: answer once every number is checked; no_wait: unknown numbers are 'processing'.")
    contacts: list[str] = Field(..., min_length=1, max_length=1000,
                                description="Phone numbers in any standard format, e.g. '+1 (631) 555-1004'.")
    force_check: bool = Field(False, description="Check again even when a result younger than 7 days is cached.")


class ContactStatus(Strict):
    input: str
    status: Literal["valid", "invalid", "processing", "failed"]
    wa_id: str | None = None


class ContactsResponse(Strict):
    contacts: list[ContactStatus]
    meta: Meta | None = None


class Error(Strict):
    code: int
    title: str
    details: str = ""


class ErrorResponse(Strict):
    errors: list[Error]
    meta: Meta | None = None


class LoginToken(Strict):
    token: str
    expires_after: str


class LoginResponse(Strict):
    users: list[LoginToken]
    meta: Meta | None = None


class MediaResponse(Strict):
    media: list[MessageId]
    meta: Meta | None = None
