"""The error shape every HTTP answer of the product uses, the on-premises API's
{"errors": [{"code", "title", "details"}]}: the webapp's REST API and the coreapp's control port."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

# (HTTP status, code, title) per kind of failure, after the on-premises API's codes.
KINDS: dict[str, tuple[int, int, str]] = {
    "bad_request": (400, 1009, "Parameter value is not valid"),
    "missing": (400, 1008, "Required parameter is missing"),
    "unauthorized": (401, 1005, "Access denied"),
    "forbidden": (403, 1005, "Access denied"),
    "not_found": (404, 1006, "Resource not found"),
    "method": (405, 1000, "Method not allowed"),
    "not_owner": (409, 1011, "Not the owner of this shard"),
    "too_large": (413, 1009, "Request entity too large"),
    "too_many": (429, 1015, "Too many requests"),
    "unsupported": (415, 1009, "Unsupported media type"),
    "not_ready": (503, 1011, "Service not ready"),
    "internal": (500, 1014, "Internal error"),
    # The on-premises API answered a duplicate user name with 500 and this code and title; a client's
    # mistake is no server error here, so 409.
    "user_exists": (409, 1014, "Internal error"),
    # wacluster's own codes, from 1100 (the on-premises API has none for these): an Idempotency-Key
    # (api/idempotency.py) reused for another request body, or sent again while its first request
    # is still being decided.
    "key_reused": (422, 1100, "Idempotency-Key already used for another request"),
    "key_in_flight": (409, 1101, "A request with this Idempotency-Key is in progress"),
}


def error_body(kind: str, details: str) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of one error."""
    status, code, title = KINDS[kind]
    return status, {"errors": [{"code": code, "title": title, "details": details}]}


# Pydantic's "absent" error types, and ours (api/messages.py `missing`).
MISSING_TYPES = {"missing", "missing_argument", "missing_parameter"}


def validation_kind(exc: ValidationError) -> str:
    """1008 when every failure is a required parameter that is absent, else 1009."""
    return "missing" if all(err["type"] in MISSING_TYPES for err in exc.errors()) else "bad_request"


def describe_validation(exc: ValidationError) -> str:
    """What to fix, field by field (the first five), e.g. `messages.0.id: Field required`."""
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
