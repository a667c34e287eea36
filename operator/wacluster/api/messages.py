"""The content of POST /v1/messages, as the on-premises WhatsApp Business API documents it: text,
media (image, audio, video, document, sticker), location, contacts, interactive (button, list,
product, product_list), template and the legacy hsm. Every documented field is accepted; anything
else is refused with its name. The webapp checks the shape only (which object a type needs, which
fields a kind of parameter carries); whether a template exists or a media link answers is the
WhatsApp server's to say."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from wacluster.api.strict import Strict

PHONE_PATTERN = r"^\+?[0-9]{7,15}$"
# Our own ids (32 hex digits) and the on-premises UUID form; never used as a path by the sender.
MEDIA_ID_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z-]{0,63}$"
LINK_PATTERN = r"^https?://\S+$"
MESSAGE_TYPES = ("text", "image", "audio", "video", "document", "sticker", "location", "contacts",
                 "interactive", "template", "hsm")


def missing(what: str) -> PydanticCustomError:
    """A required parameter is absent: answered with code 1008 rather than 1009."""
    return PydanticCustomError("missing_parameter", "{what}", {"what": what})


# --- text and media ------------------------------------------------------------------------------

class Text(Strict):
    body: str = Field(..., min_length=1, max_length=4096, description="Message text, up to 4096 characters.")


class MediaProvider(Strict):
    name: str = Field(..., max_length=256, description="A media provider set up with /v1/settings/application/media/providers.")


class Media(Strict):
    """Image, audio, video, document or sticker: by `id` (POST /v1/media) or by `link`, never both."""
    id: str | None = Field(None, pattern=MEDIA_ID_PATTERN, description="Id returned by POST /v1/media.")
    link: str | None = Field(None, pattern=LINK_PATTERN, max_length=2048, description="HTTP(S) URL of the media.")
    caption: str | None = Field(None, max_length=1024, description="For image, video and document.")
    filename: str | None = Field(None, max_length=240, description="For document: the file name shown.")
    provider: MediaProvider | None = None

    @model_validator(mode="after")
    def id_or_link(self) -> "Media":
        if self.id is None and self.link is None:
            raise missing("media needs an id (from POST /v1/media) or a link")
        if self.id is not None and self.link is not None:
            raise ValueError("media takes an id or a link, not both")
        return self


# --- location and contacts -----------------------------------------------------------------------

class Location(Strict):
    longitude: float = Field(..., ge=-180, le=180)
    latitude: float = Field(..., ge=-90, le=90)
    name: str | None = Field(None, max_length=1000)
    address: str | None = Field(None, max_length=1000)


class ContactAddress(Strict):
    street: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    country: str | None = None
    country_code: str | None = None
    type: str | None = Field(None, description="HOME or WORK.")


class ContactEmail(Strict):
    email: str | None = None
    type: str | None = None


class ContactName(Strict):
    formatted_name: str = Field(..., min_length=1)
    first_name: str | None = None
    last_name: str | None = None
    middle_name: str | None = None
    suffix: str | None = None
    prefix: str | None = None


class ContactOrg(Strict):
    company: str | None = None
    department: str | None = None
    title: str | None = None


class ContactPhone(Strict):
    phone: str | None = None
    type: str | None = Field(None, description="CELL, MAIN, IPHONE, HOME or WORK.")
    wa_id: str | None = None


class ContactUrl(Strict):
    url: str | None = None
    type: str | None = None


class ContactCard(Strict):
    name: ContactName
    addresses: list[ContactAddress] | None = None
    birthday: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD.")
    emails: list[ContactEmail] | None = None
    org: ContactOrg | None = None
    phones: list[ContactPhone] | None = None
    urls: list[ContactUrl] | None = None


# --- interactive ---------------------------------------------------------------------------------

class InteractiveText(Strict):
    text: str = Field(..., min_length=1, max_length=1024)


class InteractiveHeader(Strict):
    type: Literal["text", "image", "video", "document"]
    text: str | None = Field(None, max_length=60)
    image: Media | None = None
    video: Media | None = None
    document: Media | None = None

    @model_validator(mode="after")
    def content_matches_type(self) -> "InteractiveHeader":
        if getattr(self, self.type) is None:
            raise missing(f"a header of type {self.type!r} needs a {self.type!r}")
        return self


class ReplyButtonContent(Strict):
    id: str = Field(..., min_length=1, max_length=256)
    title: str = Field(..., min_length=1, max_length=20)


class ReplyButton(Strict):
    type: Literal["reply"] = "reply"
    reply: ReplyButtonContent


class Row(Strict):
    id: str = Field(..., min_length=1, max_length=200)
    title: str = Field(..., min_length=1, max_length=24)
    description: str | None = Field(None, max_length=72)


class ProductItem(Strict):
    product_retailer_id: str = Field(..., min_length=1)


class Section(Strict):
    title: str | None = Field(None, max_length=24)
    rows: list[Row] | None = None
    product_items: list[ProductItem] | None = None


class Action(Strict):
    button: str | None = Field(None, max_length=20, description="List messages: the menu button's label.")
    buttons: list[ReplyButton] | None = Field(None, max_length=3)
    sections: list[Section] | None = Field(None, max_length=10)
    catalog_id: str | None = None
    product_retailer_id: str | None = None


# What each interactive type needs, as documented.
INTERACTIVE_NEEDS: dict[str, tuple[str, ...]] = {
    "button": ("body", "action.buttons"),
    "list": ("body", "action.button", "action.sections"),
    "product": ("action.catalog_id", "action.product_retailer_id"),
    "product_list": ("header", "body", "action.catalog_id", "action.sections"),
}


class Interactive(Strict):
    type: Literal["button", "list", "product", "product_list"]
    header: InteractiveHeader | None = None
    body: InteractiveText | None = None
    footer: InteractiveText | None = None
    action: Action

    @model_validator(mode="after")
    def parts_match_type(self) -> "Interactive":
        absent = [path for path in INTERACTIVE_NEEDS[self.type] if _lookup(self, path) is None]
        if absent:
            raise missing(f"an interactive message of type {self.type!r} needs {', '.join(absent)}")
        return self


def _lookup(model: Strict, path: str):
    value = model
    for part in path.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


# --- template ------------------------------------------------------------------------------------

class Currency(Strict):
    fallback_value: str = Field(..., min_length=1)
    code: str = Field(..., pattern=r"^[A-Za-z]{3}$", description="ISO 4217 currency code.")
    amount_1000: int = Field(..., description="The amount times 1000.")


class DateTimeComponent(Strict):
    day_of_week: int | None = Field(None, ge=1, le=7)
    day_of_month: int | None = Field(None, ge=1, le=31)
    year: int | None = None
    month: int | None = Field(None, ge=1, le=12)
    hour: int | None = Field(None, ge=0, le=23)
    minute: int | None = Field(None, ge=0, le=59)
    calendar: Literal["GREGORIAN", "SOLAR_HIJRI"] | None = None


class UnixEpoch(Strict):
    timestamp: int


class DateTime(Strict):
    """A template's date_time: the fields at its top level, or nested as the hsm form has them."""
    fallback_value: str = Field(..., min_length=1)
    day_of_week: int | None = Field(None, ge=1, le=7)
    day_of_month: int | None = Field(None, ge=1, le=31)
    year: int | None = None
    month: int | None = Field(None, ge=1, le=12)
    hour: int | None = Field(None, ge=0, le=23)
    minute: int | None = Field(None, ge=0, le=59)
    calendar: Literal["GREGORIAN", "SOLAR_HIJRI"] | None = None
    timestamp: int | None = None
    component: DateTimeComponent | None = None
    unix_epoch: UnixEpoch | None = None


class Parameter(Strict):
    type: Literal["text", "currency", "date_time", "image", "document", "video", "payload"]
    text: str | None = Field(None, max_length=32768)
    currency: Currency | None = None
    date_time: DateTime | None = None
    image: Media | None = None
    document: Media | None = None
    video: Media | None = None
    payload: str | None = Field(None, max_length=1000, description="Quick-reply buttons: returned when tapped.")

    @model_validator(mode="after")
    def content_matches_type(self) -> "Parameter":
        if getattr(self, self.type) is None:
            raise missing(f"a parameter of type {self.type!r} needs a {self.type!r}")
        return self


class Component(Strict):
    type: Literal["header", "body", "footer", "button"]
    sub_type: Literal["quick_reply", "url"] | None = Field(None, description="Button components only.")
    index: int | str | None = Field(None, description="Button components only: the button's position, 0 to 2.")
    parameters: list[Parameter] | None = None

    @model_validator(mode="after")
    def button_has_position(self) -> "Component":
        if self.type == "button" and (self.sub_type is None or self.index is None):
            raise missing("a button component needs sub_type and index")
        if self.index is not None and str(self.index) not in ("0", "1", "2"):
            raise ValueError("index must be 0, 1 or 2")
        return self


class Language(Strict):
    policy: Literal["deterministic", "fallback"] = Field(
        "deterministic", description="deterministic (the template in exactly this language) or fallback.")
    code: str = Field(..., min_length=2, max_length=16, description="Language and locale, e.g. en or en_US.")


class Template(Strict):
    namespace: str = Field(..., min_length=1)
    name: str = Field(..., min_length=1, max_length=512)
    language: Language
    components: list[Component] | None = None


# --- hsm (the legacy template message) -----------------------------------------------------------

class HsmCurrency(Strict):
    currency_code: str = Field(..., pattern=r"^[A-Za-z]{3}$")
    amount_1000: int


class HsmDateTime(Strict):
    component: DateTimeComponent | None = None
    unix_epoch: UnixEpoch | None = None


class LocalizableParam(Strict):
    default: str = Field(..., description="Used when the value cannot be localised.")
    currency: HsmCurrency | None = None
    date_time: HsmDateTime | None = None


class Hsm(Strict):
    namespace: str = Field(..., min_length=1)
    element_name: str = Field(..., min_length=1, max_length=512)
    language: Language
    localizable_params: list[LocalizableParam] | None = None


# --- the message ---------------------------------------------------------------------------------

class Context(Strict):
    message_id: str = Field(..., min_length=1, description="The message this one replies to.")


class OutgoingMessage(Strict):
    to: str = Field(..., pattern=PHONE_PATTERN, description="Recipient: a WhatsApp id or phone number, digits with optional +.")
    recipient_type: Literal["individual"] = "individual"
    type: Literal["text", "image", "audio", "video", "document", "sticker", "location", "contacts",
                  "interactive", "template", "hsm"] = "text"
    preview_url: bool | None = Field(None, description="Text messages: render a preview of the first URL.")
    ttl: int | str | None = Field(None, description="Template/hsm time to live; passed to the WhatsApp server as given.")
    context: Context | None = None
    text: Text | None = None
    image: Media | None = None
    audio: Media | None = None
    video: Media | None = None
    document: Media | None = None
    sticker: Media | None = None
    location: Location | None = None
    contacts: list[ContactCard] | None = Field(None, min_length=1)
    interactive: Interactive | None = None
    template: Template | None = None
    hsm: Hsm | None = None

    @model_validator(mode="after")
    def content_matches_type(self) -> "OutgoingMessage":
        if getattr(self, self.type) is None:
            raise missing(f"a message of type {self.type!r} needs a {self.type!r} object")
        others = [k for k in MESSAGE_TYPES if k != self.type and getattr(self, k) is not None]
        if others:
            raise ValueError(f"a message of type {self.type!r} must not carry {', '.join(others)}")
        return self
