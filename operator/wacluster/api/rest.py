"""Request and response bodies of the webapp's REST API (the on-premises WhatsApp Business API
shapes where the seeds show them). Unknown fields are errors, so typos never pass silently."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

PHONE_PATTERN = r"^\+?[0-9]{7,15}$"
MEDIA_ID_PATTERN = r"^[0-9a-f]{32}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Text(Strict):
    body: str = Field(..., min_length=1, max_length=4096, description="Message text, up to 4096 characters.")


class MediaRef(Strict):
    id: str = Field(..., pattern=MEDIA_ID_PATTERN, description="Id returned by POST /v1/media.")
    caption: str | None = Field(None, max_length=1024)


class OutgoingMessage(Strict):
    to: str = Field(..., pattern=PHONE_PATTERN, description="Recipient phone number, digits with optional +.")
    recipient_type: Literal["individual"] = "individual"
    type: Literal["text", "image", "document", "audio", "video"] = "text"
    preview_url: bool = False
    text: Text | None = None
    image: MediaRef | None = None
    document: MediaRef | None = None
    audio: MediaRef | None = None
    video: MediaRef | None = None

    @model_validator(mode="after")
    def content_matches_type(self) -> "OutgoingMessage":
        if getattr(self, self.type) is None:
            raise ValueError(f"a message of type {self.type!r} needs a {self.type!r} object")
        others = [k for k in ("text", "image", "document", "audio", "video") if k != self.type and getattr(self, k)]
        if others:
            raise ValueError(f"a message of type {self.type!r} must not carry {', '.join(others)}")
        return self


class MessageId(Strict):
    id: str


class MessagesResponse(Strict):
    messages: list[MessageId]


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


class Webhooks(Strict):
    url: HttpUrl | None = Field(None, description="Where inbound messages and statuses are POSTed.")


class ApplicationSettings(Strict):
    heartbeat_interval: float | None = Field(None, ge=0.2, le=300, description="Seconds between master heartbeats.")
    unhealthy_interval: float | None = Field(None, ge=0.5, le=3600, description="Seconds of silence before failover.")
    db_heartbeat_interval: float | None = Field(None, ge=0.5, le=3600)
    db_unhealthy_after: float | None = Field(None, ge=1, le=7200)
    webhooks: Webhooks | None = None


class Error(Strict):
    code: int
    title: str
    details: str = ""


class ErrorResponse(Strict):
    errors: list[Error]


class LoginToken(Strict):
    token: str
    expires_after: str


class LoginResponse(Strict):
    users: list[LoginToken]


class MediaResponse(Strict):
    media: list[MessageId]
