"""An on-premises message becomes the Cloud API request Meta documents: our id in
biz_opaque_callback_data, the type object in the Cloud form, fields the Cloud API lacks dropped,
our media ids left as markers for the driver to upload."""

from __future__ import annotations

import json

import pytest

from onprem_corpus import BODIES, MEDIA_ID, TO, stored
from wacluster.api.messages import MESSAGE_TYPES
from wacluster.domain.cloud_messages import MediaToUpload, cloud_message, media_to_upload, with_cloud_media

pytestmark = pytest.mark.unit

OUR_ID = "wamid.0123456789abcdef0123456789abcdef"


def mapped(name: str) -> dict:
    return cloud_message(OUR_ID, stored(BODIES[name]))


def test_the_corpus_has_every_on_prem_message_type():
    assert {stored(body)["type"] for body in BODIES.values()} == set(MESSAGE_TYPES)


@pytest.mark.parametrize("name", BODIES)
def test_every_message_carries_the_cloud_envelope_and_our_id(name):
    body = mapped(name)
    assert body["messaging_product"] == "whatsapp"
    assert body["recipient_type"] == "individual"
    assert body["to"] == BODIES[name]["to"]
    assert body["biz_opaque_callback_data"] == OUR_ID
    assert body["type"] in body
    assert "ttl" not in body and "preview_url" not in body


def test_text_takes_preview_url_inside_the_text_object():
    assert mapped("text")["text"] == {"body": "see https://example.com", "preview_url": True}
    assert mapped("text by default")["text"] == {"body": "hi"}


def test_a_reply_names_the_quoted_message_in_context():
    assert mapped("reply")["context"] == {"message_id": BODIES["reply"]["context"]["message_id"]}
    assert "context" not in mapped("text")


def test_media_by_our_id_is_a_marker_and_keeps_the_fields_its_type_has():
    assert mapped("image by id")["image"] == {"id": MediaToUpload(MEDIA_ID), "caption": "a"}
    assert mapped("document")["document"] == {"id": MediaToUpload(MEDIA_ID), "caption": "c", "filename": "report.pdf"}
    assert mapped("audio")["audio"] == {"id": MediaToUpload(MEDIA_ID)}


def test_media_by_link_drops_the_on_prem_provider():
    assert mapped("video with provider")["video"] == {"link": "https://example.com/v.mp4", "caption": "v"}
    assert mapped("sticker")["sticker"] == {"link": "https://example.com/s.webp"}


def test_location_coordinates_are_strings_as_meta_types_them():
    assert mapped("location")["location"] == {"latitude": "37.758056", "longitude": "-122.425332",
                                              "name": "HQ", "address": "1 Hacker Way"}


def test_contacts_and_interactive_keep_their_shape():
    assert mapped("contacts")["contacts"] == stored(BODIES["contacts"])["contacts"]
    onprem = stored(BODIES["interactive list"])["interactive"]
    assert mapped("interactive list")["interactive"] == onprem
    assert mapped("interactive button")["interactive"]["header"] == {"type": "image", "image": {"id": MediaToUpload(MEDIA_ID)}}


def test_template_drops_namespace_and_footer_and_narrows_date_time_to_its_fallback():
    template = mapped("template")["template"]
    assert template["name"] == "order" and "namespace" not in template
    assert template["language"] == {"policy": "deterministic", "code": "en_US"}
    assert [c["type"] for c in template["components"]] == ["header", "body", "button", "button"]
    body = template["components"][1]["parameters"]
    assert body[1] == {"type": "currency", "currency": {"fallback_value": "$1", "code": "USD", "amount_1000": 1000}}
    assert body[2] == {"type": "date_time", "date_time": {"fallback_value": "today"}}
    assert body[3] == {"type": "date_time", "date_time": {"fallback_value": "Feb 2024"}}


def test_a_button_index_is_sent_as_a_string():
    buttons = [c for c in mapped("template")["template"]["components"] if c["type"] == "button"]
    assert [(b["sub_type"], b["index"]) for b in buttons] == [("quick_reply", "0"), ("url", "1")]
    assert buttons[0]["parameters"] == [{"type": "payload", "payload": "p"}]


def test_legacy_hsm_becomes_a_template_with_body_parameters():
    body = mapped("hsm")
    assert body["type"] == "template" and "hsm" not in body
    assert body["template"] == {
        "name": "payment_due",
        # on-prem "fallback" has no Cloud counterpart: the template is looked up as given
        "language": {"policy": "deterministic", "code": "en"},
        "components": [{"type": "body", "parameters": [
            {"type": "text", "text": "Jo"},
            {"type": "currency", "currency": {"fallback_value": "$1.00", "code": "USD", "amount_1000": 1000}},
            {"type": "date_time", "date_time": {"fallback_value": "1 Jan"}}]}]}
    assert "components" not in mapped("hsm without params")["template"]


def test_media_markers_are_listed_and_replaced_by_cloud_ids():
    body = mapped("template")
    assert media_to_upload(body) == {MEDIA_ID}
    ready = with_cloud_media(body, {MEDIA_ID: "1013859600285441"})
    assert media_to_upload(ready) == set()
    assert ready["template"]["components"][0]["parameters"][0]["document"] == {"id": "1013859600285441", "filename": "d.pdf"}
    json.dumps(ready)  # nothing but JSON left
    with pytest.raises(KeyError):
        with_cloud_media(body, {})


def test_mapping_does_not_change_the_stored_content():
    content = stored(BODIES["template"])
    before = json.dumps(content, sort_keys=True)
    with_cloud_media(cloud_message(OUR_ID, content), {MEDIA_ID: "1"})
    assert json.dumps(content, sort_keys=True) == before


def test_an_id_too_long_for_biz_opaque_callback_data_is_refused():
    with pytest.raises(ValueError, match="512"):
        cloud_message("x" * 513, {"to": TO, "type": "text", "text": {"body": "hi"}})
