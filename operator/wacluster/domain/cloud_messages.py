"""One stored on-premises message (the content the webapp validated with api/messages.py and kept
as `model_dump(exclude_none=True)`) as the body of the Cloud API's
`POST /{Version}/{Phone-Number-ID}/messages`, after Meta's OpenAPI document (v23.0).

Pure: media the on-premises client knew by our own id (POST /v1/media) comes out as a
`MediaToUpload` marker; the driver uploads each one to `/{Phone-Number-ID}/media` once, caches the
Cloud media id, and swaps the markers with `with_cloud_media` just before sending. Our message id
travels in `biz_opaque_callback_data`, which Cloud echoes in every status webhook of the message:
that is how a status (and an in-doubt send) is tied back to our row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

MESSAGING_PRODUCT = "whatsapp"
# The Cloud API's limit on biz_opaque_callback_data; our ids (`wamid.` + 32 hex) are far below it.
CALLBACK_DATA_MAX = 512
MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")
# What each Cloud media message carries besides id/link (Meta's message reference): audio and
# sticker take no caption, only a document has a filename.
MEDIA_FIELDS: dict[str, tuple[str, ...]] = {
    "image": ("caption",),
    "video": ("caption",),
    "document": ("caption", "filename"),
    "audio": (),
    "sticker": (),
}
# Media in a template parameter or an interactive header: the text around it is the template's or
# the message's, so only a document's filename is kept.
EMBEDDED_MEDIA_FIELDS: dict[str, tuple[str, ...]] = {"image": (), "video": (), "document": ("filename",)}


@dataclass(frozen=True)
class MediaToUpload:
    """Our media id where the Cloud API needs its own: the driver uploads the file once and puts
    the Cloud media id in its place (`with_cloud_media`)."""
    media_id: str


def cloud_message(message_id: str, content: Mapping[str, Any]) -> dict[str, Any]:
    """The Cloud request body of one stored on-premises message. The result may hold
    `MediaToUpload` markers (see `media_to_upload`); it is JSON once they are replaced."""
    if len(message_id) > CALLBACK_DATA_MAX:
        raise ValueError(f"message id longer than {CALLBACK_DATA_MAX} characters: {message_id[:40]}…")
    kind = content.get("type", "text")
    body: dict[str, Any] = {
        "messaging_product": MESSAGING_PRODUCT,
        "recipient_type": content.get("recipient_type", "individual"),
        "to": content["to"],
        "type": "template" if kind == "hsm" else kind,
    }
    if "context" in content:
        # A reply: the quoted message is named by its wamid in both APIs.
        body["context"] = {"message_id": content["context"]["message_id"]}
    if kind == "text":
        body["text"] = _text(content)
    elif kind in MEDIA_TYPES:
        body[kind] = _media(content[kind], MEDIA_FIELDS[kind])
    elif kind == "location":
        body["location"] = _location(content["location"])
    elif kind == "contacts":
        # The contact card has the same fields in both APIs.
        body["contacts"] = [dict(card) for card in content["contacts"]]
    elif kind == "interactive":
        body["interactive"] = _interactive(content["interactive"])
    elif kind == "template":
        body["template"] = _template(content["template"])
    elif kind == "hsm":
        body["template"] = _hsm(content["hsm"])
    else:
        raise ValueError(f"no Cloud API form for a message of type {kind!r}")
    # Dropped on purpose: `ttl` (the Cloud API has no per-message time to live; a template's own
    # "message send TTL" is set on the template in WhatsApp Manager) and `preview_url` outside a
    # text message (the on-premises API ignored it there too).
    body["biz_opaque_callback_data"] = message_id
    return body


def media_to_upload(body: Any) -> set[str]:
    """Our media ids the body still names (each needs a Cloud media id before the send)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, MediaToUpload):
            found.add(node.media_id)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(body)
    return found


def with_cloud_media(body: Any, cloud_media_ids: Mapping[str, str]) -> Any:
    """The body with every `MediaToUpload` replaced by the Cloud media id of our media id
    (KeyError names a media id the driver has not uploaded)."""
    if isinstance(body, MediaToUpload):
        return cloud_media_ids[body.media_id]
    if isinstance(body, dict):
        return {key: with_cloud_media(value, cloud_media_ids) for key, value in body.items()}
    if isinstance(body, list):
        return [with_cloud_media(value, cloud_media_ids) for value in body]
    return body


# --- one function per part -----------------------------------------------------------------------

def _text(content: Mapping[str, Any]) -> dict[str, Any]:
    text: dict[str, Any] = {"body": content["text"]["body"]}
    # On-premises puts preview_url beside `text`; the Cloud API inside it.
    if content.get("preview_url") is not None:
        text["preview_url"] = bool(content["preview_url"])
    return text


def _media(media: Mapping[str, Any], extra_fields: tuple[str, ...]) -> dict[str, Any]:
    # `provider` (an on-premises media provider holding credentials for the link) has no Cloud
    # counterpart: the Cloud API fetches links anonymously, so it is dropped.
    out: dict[str, Any] = {"id": MediaToUpload(media["id"])} if "id" in media else {"link": media["link"]}
    out.update({name: media[name] for name in extra_fields if name in media})
    return out


def _location(location: Mapping[str, Any]) -> dict[str, Any]:
    # Meta's document types latitude and longitude as strings (the on-premises API as numbers);
    # repr keeps every digit of the float.
    out: dict[str, Any] = {"latitude": repr(float(location["latitude"])),
                           "longitude": repr(float(location["longitude"]))}
    out.update({name: location[name] for name in ("name", "address") if name in location})
    return out


def _interactive(interactive: Mapping[str, Any]) -> dict[str, Any]:
    # Same structure in both APIs (button, list, product, product_list); only header media by our
    # id needs the Cloud id.
    out = {key: value for key, value in interactive.items() if key != "header"}
    header = interactive.get("header")
    if header is not None:
        out["header"] = {"type": header["type"]}
        if header["type"] == "text":
            out["header"]["text"] = header["text"]
        else:
            out["header"][header["type"]] = _media(header[header["type"]], EMBEDDED_MEDIA_FIELDS[header["type"]])
    return out


def _language(language: Mapping[str, Any]) -> dict[str, str]:
    # The Cloud API knows only the deterministic policy (on-premises deprecated `fallback`): the
    # template is looked up in exactly this language, which is what `fallback` did once a language
    # pack had been loaded.
    return {"policy": "deterministic", "code": language["code"]}


def _template(template: Mapping[str, Any]) -> dict[str, Any]:
    # `namespace` is dropped: a Cloud template is named by name and language within the WhatsApp
    # Business Account the phone number belongs to.
    out: dict[str, Any] = {"name": template["name"], "language": _language(template["language"])}
    components = [_component(component) for component in template.get("components", ())
                  # A footer holds no variables, and the Cloud API has no footer component to send.
                  if component["type"] != "footer"]
    if components:
        out["components"] = components
    return out


def _component(component: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": component["type"]}
    if "sub_type" in component:
        out["sub_type"] = component["sub_type"]
    if "index" in component:
        # The Cloud API takes the button position as a string ("0" to "9"); on-premises took both.
        out["index"] = str(component["index"])
    if "parameters" in component:
        out["parameters"] = [_parameter(parameter) for parameter in component["parameters"]]
    return out


def _parameter(parameter: Mapping[str, Any]) -> dict[str, Any]:
    kind = parameter["type"]
    if kind in ("text", "payload"):
        return {"type": kind, kind: parameter[kind]}
    if kind == "currency":
        currency = parameter["currency"]
        return {"type": "currency", "currency": {"fallback_value": currency["fallback_value"],
                                                 "code": currency["code"],
                                                 "amount_1000": currency["amount_1000"]}}
    if kind == "date_time":
        # The Cloud API shows fallback_value as given and localises nothing: the on-premises
        # component/unix_epoch fields have no counterpart and are dropped.
        return {"type": "date_time", "date_time": {"fallback_value": parameter["date_time"]["fallback_value"]}}
    # image, document, video: a media object like a media message's.
    return {"type": kind, kind: _media(parameter[kind], EMBEDDED_MEDIA_FIELDS[kind])}


def _hsm(hsm: Mapping[str, Any]) -> dict[str, Any]:
    """The legacy hsm as a Cloud template: element_name is the template's name and the
    localizable_params are its body parameters, in order."""
    out: dict[str, Any] = {"name": hsm["element_name"], "language": _language(hsm["language"])}
    params = hsm.get("localizable_params")
    if params:
        out["components"] = [{"type": "body", "parameters": [_localizable_param(p) for p in params]}]
    # `namespace` is dropped as for a template.
    return out


def _localizable_param(param: Mapping[str, Any]) -> dict[str, Any]:
    # `default` was the text used when a value could not be localised: the Cloud API's
    # fallback_value for currency and date_time, the text itself otherwise.
    if "currency" in param:
        currency = param["currency"]
        return {"type": "currency", "currency": {"fallback_value": param["default"],
                                                 "code": currency["currency_code"],
                                                 "amount_1000": currency["amount_1000"]}}
    if "date_time" in param:
        return {"type": "date_time", "date_time": {"fallback_value": param["default"]}}
    return {"type": "text", "text": param["default"]}
