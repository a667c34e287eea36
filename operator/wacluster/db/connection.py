"""Connection settings from the environment and the shared async pool."""

from __future__ import annotations

import os

from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool


def conninfo_from_env(env: dict[str, str] | None = None) -> str:
    """WACLUSTER_DATABASE_URL, or the WACLUSTER_DB_* parts the operator's pods receive."""
    env = env if env is not None else dict(os.environ)
    url = env.get("WACLUSTER_DATABASE_URL")
    if url:
        return url
    host = env.get("WACLUSTER_DB_HOST")
    if not host:
        raise RuntimeError("no database configured: set WACLUSTER_DATABASE_URL or WACLUSTER_DB_HOST")
    return make_conninfo(
        host=host, port=env.get("WACLUSTER_DB_PORT", "5432"), dbname=env.get("WACLUSTER_DB_NAME", "whatsapp"),
        user=env.get("WACLUSTER_DB_USER", "postgres"), password=env.get("WACLUSTER_DB_PASSWORD", ""),
        sslmode=env.get("WACLUSTER_DB_SSLMODE", "prefer"), connect_timeout="5",
    )


async def open_pool(conninfo: str, min_size: int = 1, max_size: int = 8) -> AsyncConnectionPool:
    pool = AsyncConnectionPool(conninfo, min_size=min_size, max_size=max_size, open=False,
                               kwargs={"autocommit": True}, timeout=10)
    await pool.open(wait=False)
    return pool
