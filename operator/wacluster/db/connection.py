"""Connection settings from the environment and the shared async pool."""

from __future__ import annotations

import os

from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool

from wacluster.api.interprocess import Env, Port


def conninfo_from_env(env: dict[str, str] | None = None) -> str:
    """Env.DATABASE_URL, or the Env.DB_* parts the operator's pods receive."""
    env = env if env is not None else dict(os.environ)
    url = env.get(Env.DATABASE_URL)
    if url:
        return url
    host = env.get(Env.DB_HOST)
    if not host:
        raise RuntimeError(f"no database configured: set {Env.DATABASE_URL} or {Env.DB_HOST}")
    return make_conninfo(
        host=host, port=env.get(Env.DB_PORT, str(Port.DATABASE)), dbname=env.get(Env.DB_NAME, "whatsapp"),
        user=env.get(Env.DB_USER, "postgres"), password=env.get(Env.DB_PASSWORD, ""),
        sslmode=env.get(Env.DB_SSLMODE, "prefer"), connect_timeout="5",
    )


async def open_pool(conninfo: str, min_size: int = 1, max_size: int = 8, timeout: float = 10.0) -> AsyncConnectionPool:
    """The pool every role takes its connections from.

    Each connection is checked as it is handed out (an empty query, one round trip): after a
    PostgreSQL restart or failover every idle connection is dead, and without the check the next
    request of each would fail (a webapp's first POST after the restart answered 500). A dead one
    is discarded and replaced. A connection that breaks while in use still fails that use.
    `timeout`: how long a caller waits for a connection before PoolTimeout (e.g. while the
    database is down)."""
    pool = AsyncConnectionPool(conninfo, min_size=min_size, max_size=max_size, open=False,
                               kwargs={"autocommit": True}, timeout=timeout,
                               check=AsyncConnectionPool.check_connection)
    await pool.open(wait=False)
    return pool
