"""Every request body the Cloud mapping produces is one Meta's OpenAPI document accepts (validated
with openapi-schema-validator, see meta_openapi.py), and the local Cloud API's models
(wacluster_testenv.cloudapi_models) judge the same bodies as Meta's document does. Skipped where
shared/reference/meta-openapi is absent ($WACLUSTER_META_OPENAPI points elsewhere)."""

from __future__ import annotations

import copy

import pytest
from pydantic import ValidationError

import meta_openapi
from onprem_corpus import BODIES, stored
from wacluster.domain.cloud_messages import cloud_message, with_cloud_media
from wacluster_testenv.cloudapi_models import MESSAGE

pytestmark = pytest.mark.unit

REFERENCE = meta_openapi.reference_dir()
needs_reference = pytest.mark.skipif(
    REFERENCE is None,
    reason=f"Meta's OpenAPI document is not here: no {meta_openapi.RELATIVE} beside {meta_openapi.REPO_ROOT} "
           f"(or beside the repository it was cloned from) and ${meta_openapi.ENV_VAR} is not set")

OUR_ID = "wamid.0123456789abcdef0123456789abcdef"
CLOUD_MEDIA_ID = "1013859600285441"


def sendable(name: str) -> dict:
    """The body the driver sends: mapped, its media markers replaced by a Cloud media id."""
    body = cloud_message(OUR_ID, stored(BODIES[name]))
    return with_cloud_media(body, {media_id: CLOUD_MEDIA_ID for media_id in _markers(body)})


def _markers(body) -> set[str]:
    from wacluster.domain.cloud_messages import media_to_upload
    return media_to_upload(body)


def local_errors(body: dict) -> str | None:
    try:
        MESSAGE.validate_python(body)
    except ValidationError as exc:
        return str(exc)
    return None


@needs_reference
@pytest.mark.parametrize("name", BODIES)
def test_every_mapped_message_is_accepted_by_metas_document(name):
    assert meta_openapi.errors(REFERENCE, sendable(name)) == []


@needs_reference
@pytest.mark.parametrize("name", BODIES)
def test_the_local_cloud_api_accepts_what_metas_document_accepts(name):
    body = sendable(name)
    assert meta_openapi.errors(REFERENCE, body) == [] and local_errors(body) is None


def _break(name: str, change) -> dict:
    body = copy.deepcopy(sendable(name))
    change(body)
    return body


INVALID = {
    "no messaging_product": ("text", lambda b: b.pop("messaging_product")),
    "no recipient": ("text", lambda b: b.pop("to")),
    # (a template message is open in Meta's document; the local Cloud API refuses it there too)
    "unknown top-level field (on-prem ttl)": ("text", lambda b: b.update(ttl=86400)),
    "preview_url beside text (on-prem form)": ("text", lambda b: b.update(preview_url=True)),
    "image by id and link": ("image by id", lambda b: b["image"].update(link="https://example.com/a.jpg")),
    "image by neither id nor link": ("image by id", lambda b: b["image"].pop("id")),
    "location as numbers (on-prem form)": ("location", lambda b: b["location"].update(latitude=37.7)),
    "template without language": ("template", lambda b: b["template"].pop("language")),
    "template language policy fallback": ("hsm", lambda b: b["template"]["language"].update(policy="fallback")),
    "template footer component": ("template", lambda b: b["template"]["components"].append({"type": "footer"})),
    "button index as on-prem integer": ("template", lambda b: b["template"]["components"][2].update(index=0)),
    "legacy hsm type": ("hsm", lambda b: b.update(type="hsm", hsm=b.pop("template"))),
    "callback data over 512": ("text", lambda b: b.update(biz_opaque_callback_data="x" * 513)),
    "list action without sections": ("interactive list", lambda b: b["interactive"]["action"].pop("sections")),
    "more than three reply buttons": ("interactive button", lambda b: b["interactive"]["action"].update(
        buttons=b["interactive"]["action"]["buttons"] * 2)),
    "a contact phone type on-prem had": ("contacts", lambda b: b["contacts"][0]["phones"][0].update(type="CELL")),
    "currency amount as a string": ("hsm", lambda b: b["template"]["components"][0]["parameters"][1]["currency"].update(
        amount_1000="1000")),
}


@needs_reference
@pytest.mark.parametrize("name", INVALID)
def test_meta_and_the_local_cloud_api_both_refuse(name):
    base, change = INVALID[name]
    body = _break(base, change)
    assert meta_openapi.errors(REFERENCE, body) != [], "Meta's document accepts it"
    assert local_errors(body) is not None, "the local Cloud API accepts it"


# Meta's examples of the send endpoint that contradict its own schemas (or are not sends at all).
# Every other example must pass the resolved document: proof the resolution is not stricter than Meta.
EXAMPLES_AT_ODDS = {
    "Send Catalog Template Message": "button index as an integer; the schema says string",
    "Send Contact Message": "no recipient_type, which BaseMessageProperties requires",
    "Send Flow Template Message": "no recipient_type; flow button parameters the schema lacks",
    "Send Location Message": "coordinates as numbers; the schema says string",
    "Send Message Template Interactive": "language without the required policy",
    "Send Message Template Media": "language without the required policy",
    "Send Message Template Text": "language without the required policy",
    "Send Multi-Product Message": "header type left as a placeholder",
    "Send Order Details Message": "interactive type order_details, not in the schema",
    "Send Order Status Message": "interactive type order_status, not in the schema",
    "Send Reply to Contact Message": "no recipient_type",
    "Send Reply to List Message": "no type",
    "Send Reply to Location Message": "coordinates as numbers",
    "Send Sample Issue Resolution Template": "no recipient_type; button index as an integer",
    "Send Sample Shipping Confirmation Template": "language without the required policy",
    "Send Sample Text Message": "language without the required policy",
    "Send Test Message": "no recipient_type; language without policy",
    "Send Text Message with Preview URL": "no type",
    "Send typing indicator and read receipt": "a read receipt, not a message",
}


@needs_reference
def test_metas_own_examples_pass_the_resolved_document():
    examples = meta_openapi.send_examples(meta_openapi.document(REFERENCE))
    refused = {name for name, body in examples.items() if meta_openapi.errors(REFERENCE, body)}
    assert refused == set(EXAMPLES_AT_ODDS)
    assert len(examples) - len(refused) >= 30


@needs_reference
def test_the_unresolved_document_refuses_even_metas_examples():
    """Why meta_openapi merges allOf: validated as written, the type-specific part's
    additionalProperties: false refuses the base fields."""
    from openapi_schema_validator import OAS31Validator
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    doc = meta_openapi.document(REFERENCE)
    registry = Registry().with_resource("urn:meta", DRAFT202012.create_resource(doc))
    validator = OAS31Validator({"$ref": "urn:meta#/components/schemas/TextMessage"}, registry=registry)
    example = meta_openapi.send_examples(doc)["Send Text Message"]
    assert any("'to'" in e.message for e in validator.iter_errors(example))
    assert meta_openapi.errors(REFERENCE, example) == []


def test_the_reference_is_found_through_the_environment_variable(monkeypatch, tmp_path):
    (tmp_path / meta_openapi.DOCUMENT_NAME).write_text("openapi: 3.1.0\n")
    monkeypatch.setenv(meta_openapi.ENV_VAR, str(tmp_path))
    assert meta_openapi.reference_dir() == tmp_path.resolve()
