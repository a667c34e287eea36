"""Every error leaves in the on-premises shape {"errors": [{"code", "title", "details"}]}
(`wacluster.api.errors`, shared with the coreapp's control port)."""

from __future__ import annotations

import json
import logging

import psycopg
from aiohttp import web
from psycopg_pool import PoolTimeout
from pydantic import ValidationError

from wacluster.api.errors import describe_validation, validation_kind
from wacluster.runtime.http_errors import error_response, http_exception_response, internal_error_response

log = logging.getLogger("wacluster.webapp")

# Seconds a request waits for a database connection before it is answered 503 (the database is
# down or saturated), and what Retry-After then suggests.
DATABASE_WAIT = 2.0
DATABASE_RETRY_AFTER = "5"



class ApiError(Exception):
    def __init__(self, kind: str, details: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(details)
        self.kind, self.details, self.headers = kind, details, headers


JSON_BODY_LIMIT = 64 * 1024


async def read_limited(request: web.Request, limit: int = JSON_BODY_LIMIT) -> bytes:
    """The body, refused as soon as it exceeds `limit`: counted on the stream, so a chunked body
    (no Content-Length) is held to the same limit as a declared one."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError("too_large", f"JSON bodies are limited to {limit // 1024} KiB")
    body = bytearray()
    async for chunk in request.content.iter_chunked(16 * 1024):
        body += chunk
        if len(body) > limit:
            raise ApiError("too_large", f"JSON bodies are limited to {limit // 1024} KiB")
    return bytes(body)


async def parse(request: web.Request, model, limit: int = JSON_BODY_LIMIT):
    """The request body as `model`, or a 400 that says what to fix."""
    raw = await read_limited(request, limit)
    try:  # a valid body, the usual case: parsed and validated in one pass by pydantic's own parser
        return model.model_validate_json(raw or b"{}")
    except ValidationError:
        pass  # what is wrong is said below, in the same words as ever
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError("bad_request", f"the body is not valid JSON: {exc}")
    if not isinstance(data, dict):
        raise ApiError("bad_request", "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(validation_kind(exc), describe_validation(exc))


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.kind, exc.details, exc.headers)
    except (PoolTimeout, psycopg.OperationalError) as exc:
        log.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
        return error_response("not_ready", "the database is unreachable; retry later",
                              {"Retry-After": DATABASE_RETRY_AFTER})
    except web.HTTPException as exc:
        return http_exception_response(request, exc, "the body exceeds the size limit")
    except Exception:  # never let a stack trace reach a client
        return internal_error_response(log, request, "webapp")
