"""`wacluster crd` and `wacluster openapi`: print or write the generated API documents."""

from __future__ import annotations

import json
from pathlib import Path

from wacluster.api.crd import render
from wacluster.api.openapi import openapi_document


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("crd", help="print the WhatsAppCluster CRD generated from the API models")
    parser.add_argument("--output", "-o", type=Path, help="write to this file instead of stdout")
    parser.set_defaults(func=run, render=render)
    parser = subparsers.add_parser("openapi", help="print the REST API's OpenAPI document generated from its models")
    parser.add_argument("--output", "-o", type=Path, help="write to this file instead of stdout")
    parser.set_defaults(func=run, render=render_openapi)


def render_openapi() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


def run(args) -> int:
    text = args.render()
    if args.output:
        args.output.write_text(text)
        print(f"wrote {args.output}")
    else:
        print(text, end="")
    return 0
