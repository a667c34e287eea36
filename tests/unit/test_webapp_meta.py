"""Every JSON answer of the REST API carries `meta`; the message path builds it in (meta.py)."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from wacluster.api.rest import META
from wacluster.runtime.webapp.meta import json_with_meta, meta_middleware

pytestmark = pytest.mark.unit


def test_an_answer_built_with_meta_has_the_bytes_the_middleware_would_have_written():
    plain = web.json_response({"messages": [{"id": "wamid.1"}]}, status=201)
    rewritten = json.dumps({**json.loads(plain.body), "meta": META}).encode()
    assert json_with_meta({"messages": [{"id": "wamid.1"}]}, status=201).body == rewritten


def test_the_middleware_passes_an_answer_built_with_meta_through_untouched():
    built = json_with_meta({"messages": [{"id": "wamid.1"}]}, status=201)
    body = built.body

    async def handler(_request):
        return built

    answer = asyncio.run(meta_middleware(None, handler))
    assert answer is built and answer.body == body and answer.status == 201
