"""The on-premises API puts a `meta` object ({"api_status", "version"}) on every JSON answer;
clients written against it may read it. Added here, once, for every answer of the REST API (errors
included) instead of in each handler."""

from __future__ import annotations

import json

from aiohttp import web

from wacluster.api.rest import META

# Served as is: the OpenAPI document is not an on-premises answer.
WITHOUT_META = {"/v1/openapi.json"}


# Marks an answer built by json_with_meta: the middleware leaves it alone.
WITH_META = "wacluster_with_meta"


def json_with_meta(data: dict, status: int = 200) -> web.Response:
    """A JSON answer with `meta` put in as it is encoded, the same bytes the middleware would make:
    on the message path the middleware's decode and re-encode cost more CPU than the answer."""
    response = web.json_response({**data, "meta": META}, status=status)
    response[WITH_META] = True
    return response


@web.middleware
async def meta_middleware(request: web.Request, handler):
    response = await handler(request)
    if isinstance(response, web.StreamResponse) and response.get(WITH_META):
        return response
    if (request.path in WITHOUT_META or not isinstance(response, web.Response)
            or response.content_type != "application/json" or not response.body):
        return response
    try:
        body = json.loads(response.body)
    except (TypeError, ValueError):
        return response
    if isinstance(body, dict) and "meta" not in body:
        body["meta"] = META
        response.body = json.dumps(body).encode()
    return response
