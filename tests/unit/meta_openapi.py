"""Meta's OpenAPI document of the Cloud API (shared/reference/meta-openapi, v23.0) as a validator of
`POST /{Version}/{Phone-Number-ID}/messages` bodies, with openapi-schema-validator (the OpenAPI 3.1
dialect of JSON Schema).

The document cannot be used as written; each step below is what it takes to make it say what Meta
documents, and nothing more:
- `Message` is a oneOf of per-type schemas: the branch is selected by `type` first (its
  discriminator), so a failure names one branch's errors, not eleven.
- Each branch is `allOf: [BaseMessageProperties, {additionalProperties: false, ...}]`. In JSON
  Schema the second part sees only its own properties, so it refuses `to` and `messaging_product`
  (Meta's own examples fail). The parts are merged into one object before validating, so
  `additionalProperties: false` means "nothing beyond the branch's documented fields".
- Discriminators inside (template components, their parameters) are annotations to a JSON Schema
  validator; they become if/then on the discriminating property, so a currency parameter is
  checked against CurrencyParameter.
- `biz_opaque_callback_data` (documented, echoed in status webhooks) is missing: allowed, a string
  of at most 512 characters (the reference's README names this gap).
- A template button's `index` has the pattern `^[2-6, 11-14]$`, a character class that refuses "0"
  (Meta's reference: positions 0 to 9, the first button being 0): replaced by `^[0-9]$`.
"""

from __future__ import annotations

import copy
import functools
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

ENV_VAR = "WACLUSTER_META_OPENAPI"
DOCUMENT_NAME = "business-messaging-api_v23.0.yaml"
REPO_ROOT = Path(__file__).resolve().parents[2]
RELATIVE = Path("..") / "shared" / "reference" / "meta-openapi"
SEND_PATH = "/{Version}/{Phone-Number-ID}/messages"
CALLBACK_DATA = {"type": "string", "maxLength": 512}
BROKEN_INDEX_PATTERN = "^[2-6, 11-14]$"
BUTTON_INDEX_PATTERN = "^[0-9]$"


def reference_dir() -> Path | None:
    """Where Meta's document is: $WACLUSTER_META_OPENAPI, else ../shared/reference/meta-openapi
    beside this repository, else beside the repository this one was cloned from (CI runs the
    tests in a fresh clone in a temporary directory: hack/newcomer.sh)."""
    candidates = []
    if os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]))
    candidates.append(REPO_ROOT / RELATIVE)
    origin = _clone_origin()
    if origin is not None:
        candidates.append(origin / RELATIVE)
    for candidate in candidates:
        if (candidate / DOCUMENT_NAME).is_file():
            return candidate.resolve()
    return None


def _clone_origin() -> Path | None:
    try:
        url = subprocess.run(["git", "-C", str(REPO_ROOT), "config", "--get", "remote.origin.url"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    path = Path(url.removeprefix("file://"))
    return path if url and path.is_absolute() and path.is_dir() else None


@functools.lru_cache(maxsize=1)
def document(directory: Path) -> dict[str, Any]:
    with open(directory / DOCUMENT_NAME, "rb") as f:
        return yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def send_examples(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Meta's own example bodies of the send endpoint, by name."""
    content = doc["paths"][SEND_PATH]["post"]["requestBody"]["content"]["application/json"]
    return {name: example["value"] for name, example in content["examples"].items()}


@functools.lru_cache(maxsize=32)
def message_schema(directory: Path, message_type: str) -> dict[str, Any]:
    """The resolved, self-contained JSON Schema of one `Message` branch (module docstring)."""
    schemas = document(directory)["components"]["schemas"]
    mapping = schemas["Message"]["discriminator"]["mapping"]
    if message_type not in mapping:
        raise KeyError(f"Meta's Message has no branch for type {message_type!r}")
    name = mapping[message_type].rsplit("/", 1)[-1]
    schema = _Resolver(schemas).resolve({"$ref": f"#/components/schemas/{name}"}, ())
    schema.setdefault("properties", {})["biz_opaque_callback_data"] = dict(CALLBACK_DATA)
    return _fix_index_pattern(schema)


def errors(directory: Path, body: dict[str, Any]) -> list[str]:
    """Why Meta's document refuses `body` (empty when it accepts it)."""
    from openapi_schema_validator import OAS31Validator, oas31_format_checker

    kind = body.get("type")
    if not isinstance(kind, str):
        return ["type: missing"]
    try:
        schema = message_schema(directory, kind)
    except KeyError as exc:
        return [str(exc)]
    validator = OAS31Validator(schema, format_checker=oas31_format_checker)
    return sorted(f"{'.'.join(str(p) for p in e.absolute_path) or 'body'}: {e.message}"
                  for e in validator.iter_errors(body))


class _Resolver:
    """Inlines $refs, merges allOf into one object and turns discriminators into if/then."""

    def __init__(self, schemas: dict[str, Any]) -> None:
        self.schemas = schemas

    def resolve(self, node: Any, stack: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [self.resolve(item, stack) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            target = self.schemas[name]
            if name in stack:
                # A discriminated base reached again from one of its mapped schemas: its fields
                # only, the dispatch already happened.
                target = {k: v for k, v in target.items() if k != "discriminator"}
                if "$ref" in str(target):
                    raise ValueError(f"recursive schema {name} cannot be inlined")
                return self.resolve(target, stack)
            return self.resolve(target, stack + (name,))
        out = {key: self.resolve(value, stack) for key, value in node.items()
               if key not in ("allOf", "discriminator", "description", "example", "examples")}
        if "allOf" in node:
            out = _merge([out, *self.resolve(node["allOf"], stack)])
        if "discriminator" in node and "mapping" in node["discriminator"]:
            prop = node["discriminator"]["propertyName"]
            cases = [{"if": {"properties": {prop: {"const": value}}, "required": [prop]},
                      "then": self.resolve({"$ref": ref}, stack)}
                     for value, ref in node["discriminator"]["mapping"].items()]
            out = _merge([out, {"allOf": cases}])
        return out


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    extra: list[dict[str, Any]] = []
    closed = False
    for part in parts:
        for key, value in part.items():
            if key == "properties":
                for prop, schema in value.items():
                    properties[prop] = {"allOf": [properties[prop], schema]} if prop in properties else schema
            elif key == "required":
                required += [r for r in value if r not in required]
            elif key == "additionalProperties" and value is False:
                closed = True
            elif key == "allOf":
                extra += value
            elif key in merged and merged[key] != value:
                extra.append({key: value})
            else:
                merged[key] = value
    if properties:
        merged["properties"] = properties
    if required:
        merged["required"] = required
    if closed:
        merged["additionalProperties"] = False
    if extra:
        merged["allOf"] = extra
    return merged


def _fix_index_pattern(node: Any) -> Any:
    node = copy.deepcopy(node)
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("pattern") == BROKEN_INDEX_PATTERN:
                item["pattern"] = BUTTON_INDEX_PATTERN
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return node
