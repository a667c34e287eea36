"""Generate the WhatsAppCluster CustomResourceDefinition from the pydantic models.

A CRD needs a *structural* OpenAPI v3 schema: every node typed, no `$ref`, no `anyOf` with
`null`. pydantic's JSON Schema is turned into one here: references are inlined, optional
fields become plain properties (absence is how Kubernetes spells "unset"), titles are dropped,
and our CEL rules and preserve-unknown markers are kept as they are.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from wacluster.api import v1alpha1 as api

_DROP = {"title", "$defs"}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[1]])
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"cannot express anyOf with {len(branches)} non-null branches in a CRD")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if rest.get("default", ...) is None:
            rest.pop("default")
        return _resolve({**branches[0], **rest}, defs)
    out = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {name: _resolve(prop, defs) for name, prop in value.items()}
        elif key == "const":
            out["enum"] = [value]
        else:
            out[key] = _resolve(value, defs)
    return _structural(out)


def _structural(node: dict[str, Any]) -> dict[str, Any]:
    # A CRD forbids additionalProperties beside properties; unknown fields are pruned anyway.
    if node.get("additionalProperties") is False:
        node.pop("additionalProperties")
    if node.get("x-kubernetes-preserve-unknown-fields"):
        node.setdefault("type", "object")
        node.pop("additionalProperties", None)
    if "enum" in node and "type" not in node:
        kinds = {type(v) for v in node["enum"]}
        node["type"] = "integer" if kinds == {int} else "string"
    if node.get("type") == "object" and node.get("additionalProperties") is True:
        node.pop("additionalProperties")
        node["x-kubernetes-preserve-unknown-fields"] = True
    # Defaults of object-typed fields are filled in by their own properties' defaults.
    if node.get("type") == "object" and isinstance(node.get("default"), dict):
        node.pop("default")
    if node.get("type") == "array" and node.get("default") == []:
        node.pop("default")
    return node


def openapi_schema(model: type, mode: str = "validation") -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode=mode)
    return _resolve(raw, raw.get("$defs", {}))


# Optional sub-objects that stay absent unless given: CEL `has()` must see the user's intent.
_NO_DEFAULT = {"external"}


def _prune_empty(value: Any) -> Any:
    if isinstance(value, dict):
        pruned = {k: _prune_empty(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ({}, [], None)}
    return value


def _fill_object_defaults(schema: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Give nested objects their complete default value: the apiserver checks CEL rules against
    a default as written, before the inner properties' defaults would be applied."""
    for name, prop in schema.get("properties", {}).items():
        if prop.get("type") == "object" and "properties" in prop:
            if name not in _NO_DEFAULT and name not in schema.get("required", []) and name in defaults:
                prop["default"] = copy.deepcopy(defaults[name])
            _fill_object_defaults(prop, defaults.get(name) or {})


def crd() -> dict[str, Any]:
    spec_schema = openapi_schema(api.WhatsAppClusterSpec)
    spec_defaults = _prune_empty(api.WhatsAppClusterSpec().model_dump(by_alias=True, mode="json"))
    _fill_object_defaults(spec_schema, spec_defaults)
    spec_schema["default"] = copy.deepcopy(spec_defaults)
    status_schema = openapi_schema(api.WhatsAppClusterStatus, mode="serialization")
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{api.PLURAL}.{api.GROUP}"},
        "spec": {
            "group": api.GROUP,
            "scope": "Namespaced",
            "names": {"kind": api.KIND, "listKind": f"{api.KIND}List", "plural": api.PLURAL,
                      "singular": api.SINGULAR, "shortNames": api.SHORT_NAMES, "categories": ["all"]},
            "versions": [{
                "name": api.VERSION, "served": True, "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Ready", "type": "string", "jsonPath": ".status.readySummary",
                     "description": "Ready pods over desired pods"},
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Version", "type": "string", "jsonPath": ".status.version"},
                    {"name": "Shards", "type": "integer", "jsonPath": ".spec.shards"},
                    {"name": "Primary", "type": "string", "jsonPath": ".status.primaryMaster",
                     "description": "Pod holding the master Lease"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": f"{api.KIND} runs the WhatsApp Business API client in High Availability and multiconnect mode.",
                    "properties": {
                        "apiVersion": {"type": "string", "description": "APIVersion of this object."},
                        "kind": {"type": "string", "description": "Kind of this object."},
                        "metadata": {"type": "object"},
                        "spec": spec_schema,
                        "status": status_schema,
                    },
                }},
            }],
        },
    }


def render() -> str:
    header = "# Generated from operator/wacluster/api/v1alpha1.py by `make crds`. Do not edit.\n"
    return header + yaml.safe_dump(crd(), sort_keys=False, width=120)
