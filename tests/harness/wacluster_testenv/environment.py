"""One named test environment = a control plane plus a PostgreSQL server, in one state directory."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from wacluster_testenv.controlplane import ControlPlane
from wacluster_testenv.postgres import Postgres


def state_root() -> Path:
    # Under /tmp, not ~/.cache: the PostgreSQL server runs as an unprivileged user and must be
    # able to reach its data directory; only the built binaries are cached in the home directory.
    return Path(os.environ.get("WACLUSTER_TESTENV_DIR", "/tmp/wacluster-testenv"))


@dataclass
class Environment:
    name: str = "default"

    @property
    def directory(self) -> Path:
        return state_root() / self.name

    @property
    def control_plane(self) -> ControlPlane:
        return ControlPlane(self.directory / "k8s")

    @property
    def postgres(self) -> Postgres:
        pg = Postgres(self.directory / "pg")
        summary = self.directory / "summary.json"
        if summary.exists():
            pg.port = json.loads(summary.read_text()).get("postgres_port", 0)
        return pg

    def up(self, with_postgres: bool = True, nodes: str = "kwok") -> dict:
        started = time.monotonic()
        self.directory.mkdir(parents=True, exist_ok=True)
        control_plane = ControlPlane(self.control_plane.state_dir, nodes=nodes).up()
        summary = {"name": self.name, "kubeconfig": str(control_plane.kubeconfig),
                   "server": control_plane.info()["server"], "nodes": nodes}
        if with_postgres:
            try:
                pg = Postgres(self.directory / "pg").up()
            except BaseException:
                control_plane.down()
                raise
            summary.update(postgres_port=pg.port, postgres_dsn=pg.admin_dsn)
        summary["ready_in_s"] = round(time.monotonic() - started, 1)
        (self.directory / "summary.json").write_text(json.dumps(summary, indent=2))
        (self.directory / "env.sh").write_text(
            f"export KUBECONFIG={summary['kubeconfig']}\n"
            + (f"export WACLUSTER_DATABASE_URL={summary['postgres_dsn']}\n" if with_postgres else "")
        )
        return summary

    def summary(self) -> dict | None:
        path = self.directory / "summary.json"
        return json.loads(path.read_text()) if path.exists() else None

    def down(self) -> list[str]:
        stopped = self.postgres.down() + self.control_plane.down()
        shutil.rmtree(self.directory, ignore_errors=True)
        return stopped
