"""The CRD is generated from the API models and committed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from wacluster.api.crd import crd, render

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", ["crds/whatsappcluster.yaml", "charts/wacluster/crds/whatsappcluster.yaml"])
def test_committed_crd_matches_the_models(path):
    committed = (ROOT / path).read_text()
    assert committed == render(), f"{path} is stale: run `make crds` and commit it"


def _walk(schema, path="spec"):
    yield path, schema
    for name, prop in (schema.get("properties") or {}).items():
        yield from _walk(prop, f"{path}.{name}")
    if "items" in schema:
        yield from _walk(schema["items"], f"{path}[]")


def test_every_spec_field_is_described_for_kubectl_explain():
    spec = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    undocumented = [path for path, node in _walk(spec) if not node.get("description") and not path.endswith("[]")]
    assert undocumented == []


def test_schema_is_structural():
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema, "root"):
        assert "$ref" not in node and "anyOf" not in node, path
        # an int-or-string (as core/v1 spells quantities and ports) is the one node without a type
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path


def test_cross_field_rules_are_cel_validations():
    text = render()
    assert "self.coreapps.replicas >= self.shards" in text
    assert "self.unhealthyInterval >= 2.0 * self.heartbeatInterval" in text
    assert "self.mode == oldSelf.mode" in text


def test_the_cloud_gateway_is_complete_in_cloud_mode_and_absent_otherwise():
    gateway = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["gateway"]
    rules = {r["message"]: r["rule"] for r in gateway["x-kubernetes-validations"]}
    required = rules["gateway.cloud.phoneNumberId and gateway.cloud.credentialsSecret are required when gateway.mode is cloud"]
    assert "has(self.cloud.phoneNumberId)" in required and "has(self.cloud.credentialsSecret)" in required
    assert rules["gateway.cloud is set only when gateway.mode is cloud"] == "self.mode == 'cloud' || !has(self.cloud)"
    cloud = gateway["properties"]["cloud"]
    assert "default" not in cloud  # absent unless given, so has(self.cloud) sees the user's intent
    assert cloud["properties"]["messagesPerSecond"] | {"description": ""} == {
        "type": "integer", "default": 80, "minimum": 1, "maximum": 1000, "description": ""}
    assert cloud["properties"]["apiVersion"]["default"] == "v23.0"
    assert cloud["properties"]["baseUrl"]["default"] == "https://graph.facebook.com"


def test_printer_columns_answer_ready_version_shards_primary_age():
    columns = [c["name"] for c in crd()["spec"]["versions"][0]["additionalPrinterColumns"]]
    for wanted in ("Ready", "Version", "Shards", "Primary", "Age"):
        assert wanted in columns


def test_rendered_yaml_parses_back():
    assert yaml.safe_load(render())["metadata"]["name"] == "whatsappclusters.wacluster.io"


def test_committed_openapi_document_matches_the_models():
    from wacluster.api.cli import render_openapi

    committed = (ROOT / "docs" / "openapi.json").read_text()
    assert committed == render_openapi(), "docs/openapi.json is stale: run `make crds` and commit it"
