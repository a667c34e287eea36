"""The request bodies of the Cloud API's `POST /{Version}/{Phone-Number-ID}/messages` that the local
Cloud API (cloudapi.py) accepts, written from Meta's OpenAPI document v23.0
(shared/reference/meta-openapi) and not from the product's models, so a mapping bug in the product
is not mirrored here. Types are strict (the document's `string` is not a number, its `integer` not
a string).

Where the document says nothing or cannot be meant as written, Meta's reference pages decide, and
the choice is named: the base fields and the type's object form one closed object (the document's
allOf+additionalProperties refuses `to` itself); `biz_opaque_callback_data` is allowed; a button
`index` is "0" to "9"; media objects take only id|link and the caption/filename the reference lists
(the document leaves them open); interactive messages are the four kinds the on-premises API had
(button, list, product, product_list; flow, catalog_message and call permission requests are
refused as not served here)."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# --- media ---------------------------------------------------------------------------------------

class MediaRef(Closed):
    """MediaObject: exactly one of id (from /media) and link."""
    id: str | None = None
    link: str | None = Field(None, pattern=r"^https?://\S+$")

    @model_validator(mode="after")
    def one_of_id_or_link(self):
        if (self.id is None) == (self.link is None):
            raise ValueError("exactly one of id and link")
        return self


class CaptionedMedia(MediaRef):
    caption: str | None = Field(None, max_length=1024)


class DocumentMedia(CaptionedMedia):
    filename: str | None = None


class TemplateDocument(MediaRef):
    filename: str | None = None


# --- text, location, contacts --------------------------------------------------------------------

class Text(Closed):
    body: str = Field(..., min_length=1, max_length=4096)
    preview_url: bool | None = None


class Location(Closed):
    # The document's type for both is string.
    latitude: str
    longitude: str
    name: str | None = None
    address: str | None = None


HomeOrWork = Literal["HOME", "WORK"]


class Address(Closed):
    street: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    country: str | None = None
    country_code: str | None = None
    type: HomeOrWork | None = None


class Email(Closed):
    email: str = Field(..., pattern=r"^[^@\s]+@[^@\s]+$")
    type: HomeOrWork | None = None


class Name(Closed):
    formatted_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    middle_name: str | None = None
    suffix: str | None = None
    prefix: str | None = None


class Org(Closed):
    company: str | None = None
    department: str | None = None
    title: str | None = None


class Phone(Closed):
    phone: str
    type: HomeOrWork | None = None
    wa_id: str | None = None


class Url(Closed):
    url: str = Field(..., pattern=r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
    type: HomeOrWork | None = None


class Contact(Closed):
    addresses: list[Address] | None = None
    birthday: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    emails: list[Email] | None = None
    name: Name | None = None
    org: Org | None = None
    phones: list[Phone] | None = None
    urls: list[Url] | None = None


# --- interactive ---------------------------------------------------------------------------------

class Header(Closed):
    type: Literal["text", "video", "image", "document"]
    text: str | None = Field(None, max_length=60)
    sub_text: str | None = Field(None, max_length=60)
    document: TemplateDocument | None = None
    image: MediaRef | None = None
    video: MediaRef | None = None


class InteractiveText(Closed):
    text: str = Field(..., max_length=1024)


class FooterText(Closed):
    text: str = Field(..., max_length=60)


class Row(Closed):
    id: str = Field(..., max_length=200)
    title: str = Field(..., max_length=24)
    description: str | None = Field(None, max_length=72)


class ProductItem(Closed):
    product_retailer_id: str


class Section(Closed):
    title: str | None = Field(None, max_length=24)
    product_items: list[ProductItem] | None = Field(None, min_length=1, max_length=30)
    rows: list[Row] | None = Field(None, max_length=10)


class Reply(Closed):
    id: str = Field(..., max_length=256)
    title: str = Field(..., max_length=20)


class ReplyButton(Closed):
    type: Literal["reply"]
    reply: Reply


class Action(Closed):
    """ActionObject is a oneOf: a list (button + sections), reply buttons, or a catalog."""
    button: str | None = Field(None, max_length=20)
    sections: list[Section] | None = Field(None, min_length=1, max_length=10)
    buttons: list[ReplyButton] | None = Field(None, min_length=1, max_length=3)
    catalog_id: str | None = None
    product_retailer_id: str | None = None

    @model_validator(mode="after")
    def exactly_one_shape(self):
        shapes = [self.button is not None and self.sections is not None,
                  self.buttons is not None,
                  self.catalog_id is not None]
        if sum(shapes) != 1:
            raise ValueError("action must be exactly one of: button+sections, buttons, catalog_id")
        return self


class Interactive(Closed):
    type: Literal["button", "list", "product", "product_list"]
    header: Header | None = None
    body: InteractiveText | None = None
    footer: FooterText | None = None
    action: Action


# --- template ------------------------------------------------------------------------------------

class Language(Closed):
    policy: Literal["deterministic"]
    code: str


class Currency(Closed):
    fallback_value: str
    code: str
    amount_1000: int


class DateTime(Closed):
    fallback_value: str


class TextParameter(Closed):
    type: Literal["text"]
    text: str = Field(..., max_length=32768)


class CurrencyParameter(Closed):
    type: Literal["currency"]
    currency: Currency


class DateTimeParameter(Closed):
    type: Literal["date_time"]
    date_time: DateTime


class ImageParameter(Closed):
    type: Literal["image"]
    image: MediaRef


class VideoParameter(Closed):
    type: Literal["video"]
    video: MediaRef


class DocumentParameter(Closed):
    type: Literal["document"]
    document: TemplateDocument


class PayloadParameter(Closed):
    type: Literal["payload"]
    payload: str


Parameter = Annotated[Union[TextParameter, CurrencyParameter, DateTimeParameter, ImageParameter,
                            VideoParameter, DocumentParameter], Field(discriminator="type")]
ButtonParameter = Annotated[Union[PayloadParameter, TextParameter], Field(discriminator="type")]


class HeaderComponent(Closed):
    type: Literal["header"]
    parameters: list[Parameter] = Field(..., min_length=1)


class BodyComponent(Closed):
    type: Literal["body"]
    parameters: list[Parameter] | None = None


class ButtonComponent(Closed):
    type: Literal["button"]
    sub_type: Literal["quick_reply", "url", "catalog"]
    index: str = Field(..., pattern=r"^[0-9]$")
    parameters: list[ButtonParameter] = Field(..., min_length=1)


Component = Annotated[Union[HeaderComponent, BodyComponent, ButtonComponent], Field(discriminator="type")]


class Template(Closed):
    name: str = Field(..., min_length=1)
    language: Language
    components: list[Component] | None = None


# --- the message ---------------------------------------------------------------------------------

class MessageContext(Closed):
    message_id: str


class Base(Closed):
    messaging_product: Literal["whatsapp"]
    recipient_type: Literal["individual", "group"]
    to: str = Field(..., min_length=1)
    context: MessageContext | None = None
    biz_opaque_callback_data: str | None = Field(None, max_length=512)


class TextMessage(Base):
    type: Literal["text"]
    text: Text


class ImageMessage(Base):
    type: Literal["image"]
    image: CaptionedMedia


class VideoMessage(Base):
    type: Literal["video"]
    video: CaptionedMedia


class DocumentMessage(Base):
    type: Literal["document"]
    document: DocumentMedia


class AudioMessage(Base):
    type: Literal["audio"]
    audio: MediaRef


class StickerMessage(Base):
    type: Literal["sticker"]
    sticker: MediaRef


class LocationMessage(Base):
    type: Literal["location"]
    location: Location


class ContactsMessage(Base):
    type: Literal["contacts"]
    contacts: list[Contact] = Field(..., min_length=1, max_length=5)


class InteractiveMessage(Base):
    type: Literal["interactive"]
    interactive: Interactive


class TemplateMessage(Base):
    type: Literal["template"]
    template: Template


Message = Annotated[Union[TextMessage, ImageMessage, VideoMessage, DocumentMessage, AudioMessage,
                          StickerMessage, LocationMessage, ContactsMessage, InteractiveMessage,
                          TemplateMessage], Field(discriminator="type")]
MESSAGE = TypeAdapter(Message)
