"""The one `wacluster` command: every role and tool is a subcommand of it."""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules, each with add_parser(subparsers); imported only when the CLI is built.
SUBCOMMANDS = [
    "wacluster.controller.main",
    "wacluster.controller.support_bundle",
    "wacluster.runtime.master",
    "wacluster.runtime.coreapp",
    "wacluster.runtime.sandbox",
    "wacluster.runtime.webapp.app",
    "wacluster.runtime.dbupgrade",
    "wacluster.testenv.cli",
    "wacluster.api.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wacluster", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        importlib.import_module(module).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except RuntimeError as exc:
        print(f"wacluster {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
