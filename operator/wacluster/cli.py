"""The one `wacluster` command: every role and tool is a subcommand of it."""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points

# Subcommand modules, each with add_parser(subparsers); imported only when the CLI is built.
SUBCOMMANDS = [
    "wacluster.controller.main",
    "wacluster.controller.support_bundle",
    "wacluster.runtime.master",
    "wacluster.runtime.coreapp.main",
    "wacluster.runtime.sandbox",
    "wacluster.runtime.webapp.app",
    "wacluster.runtime.dbupgrade",
    "wacluster.api.cli",
]
# Commands other installed distributions add (the test harness adds `testenv`): the product
# knows only this group's name, never the harness.
PLUGIN_GROUP = "wacluster.commands"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wacluster", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        importlib.import_module(module).add_parser(subparsers)
    for plugin in entry_points(group=PLUGIN_GROUP):
        plugin.load()(subparsers)
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
