"""`wacluster dbupgrade`: apply the schema migrations of this release, then exit 0.

With EXIT_ON_SUCCESS=false it stays alive after success (the seeds' rule for orchestrators that
restart containers which exit), until it is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

import psycopg

from wacluster.api.interprocess import Env, Role
from wacluster.db import schema
from wacluster.db.connection import conninfo_from_env
from wacluster.runtime.service import configure_logging, install_stop_signals

log = logging.getLogger("wacluster.dbupgrade")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(Role.DBUPGRADE, help="apply database schema migrations (exits 0 on success)")
    parser.add_argument("--retry-for", type=float, default=120.0,
                        help="keep retrying the first connection this many seconds (the database may be starting)")
    parser.set_defaults(func=run)


async def upgrade(conninfo: str, retry_for: float) -> tuple[int, int]:
    deadline = asyncio.get_running_loop().time() + retry_for
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
            break
        except psycopg.OperationalError as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"cannot reach the database: {exc}") from exc
            log.info("waiting for the database: %s", str(exc).strip().splitlines()[0])
            await asyncio.sleep(1)
    async with conn:
        return await schema.migrate(conn)


def run(args: argparse.Namespace) -> int:
    configure_logging(Role.DBUPGRADE)

    async def main() -> int:
        before, after = await upgrade(conninfo_from_env(), args.retry_for)
        if before == after:
            log.info("database schema already at version %d; nothing to do", after)
        else:
            log.info("database schema upgraded from version %d to %d", before, after)
        if os.environ.get(Env.EXIT_ON_SUCCESS, "true").lower() in ("false", "0", "no"):
            log.info("%s=false: staying alive until stopped", Env.EXIT_ON_SUCCESS)
            stop = asyncio.Event()
            install_stop_signals(stop)
            await stop.wait()
        return 0

    try:
        return asyncio.run(main())
    except schema.SchemaMismatch as exc:
        log.error("%s", exc)
        return 2
