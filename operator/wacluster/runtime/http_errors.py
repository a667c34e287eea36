"""Every HTTP answer of a role in the API's error shape (wacluster.api.errors): the webapp's REST
API and the coreapp's control port turn aiohttp's own exceptions and unexpected failures into it
the same way, so a client never sees a stack trace or an HTML error page."""

from __future__ import annotations

import logging

from aiohttp import web

from wacluster.api.errors import error_body


def error_response(kind: str, details: str, headers: dict[str, str] | None = None) -> web.Response:
    status, body = error_body(kind, details)
    return web.json_response(body, status=status, headers=headers)


def http_exception_response(request: web.Request, exc: web.HTTPException, too_large: str) -> web.Response:
    """aiohttp's own HTTP errors (unknown route or method, a body over the limit, ...) in the
    error shape; `too_large` says what the limit is. Non-errors (redirects) are re-raised."""
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return error_response("too_large", too_large)
    if isinstance(exc, web.HTTPNotFound):
        return error_response("not_found", f"no route for {request.method} {request.path}")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return error_response("method", f"{request.method} is not supported on {request.path}")
    if exc.status < 400:
        raise exc
    return error_response("bad_request", exc.reason or "bad request")


def internal_error_response(log: logging.Logger, request: web.Request, role: str) -> web.Response:
    """An unexpected failure: logged with its stack trace, answered without one."""
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response("internal", f"an internal error occurred; see the {role} log")
