"""`wacluster crd`: print or write the generated CustomResourceDefinition."""

from __future__ import annotations

from pathlib import Path

from wacluster.api.crd import render


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("crd", help="print the WhatsAppCluster CRD generated from the API models")
    parser.add_argument("--output", "-o", type=Path, help="write to this file instead of stdout")
    parser.set_defaults(func=run)


def run(args) -> int:
    text = render()
    if args.output:
        args.output.write_text(text)
        print(f"wrote {args.output}")
    else:
        print(text, end="")
    return 0
