"""The runtime roles as local processes against the local control plane and PostgreSQL: what
the integration tests, the demo and the benchmarks drive (the seeds' single-server setup)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from wacluster.api.interprocess import CHANNEL, Env, NotifyKind
from wacluster.api.interprocess import Role as ProcessRole
from wacluster.runtime.internal_auth import bearer
from wacluster_testenv.eventually import eventually
from wacluster_testenv.faults import NetworkFaults
from wacluster_testenv.leasewatch import LeaseWatch
from wacluster_testenv.processes import free_port

WEBHOOK_SIGNING_KEY = "local-webhook-signing-key"
DEFAULT_SETTINGS = {"heartbeat_interval": 1.0, "unhealthy_interval": 3.0, "db_heartbeat_interval": 1.0,
                    "db_unhealthy_after": 6.0, "lease_duration": 4.0, "renew_deadline": 3.0, "retry_period": 0.5}


@dataclass
class Role:
    name: str
    kind: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    port: int = 0
    proc: subprocess.Popen | None = None

    def start(self) -> "Role":
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 15) -> None:
        if not self.alive:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        if self.wait(timeout) is None:
            self.proc.kill()
            self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class LocalCluster:
    kubeconfig: str
    dsn: str
    namespace: str
    workdir: Path
    lease_name: str = field(default_factory=lambda: f"master-{uuid.uuid4().hex[:6]}")
    roles: dict[str, Role] = field(default_factory=dict)
    gateway_port: int = 0
    phone: str = "+15550001111"
    # When set, masters, coreapps and webapps start in cgroups of their own, so the network
    # faults of wacluster_testenv.faults can cut one of them off (the chaos benchmark does).
    network: NetworkFaults | None = None
    # The cluster's internal token (the operator's Secret <cluster>-internal): one per cluster,
    # given to its masters, coreapps and webapps, the only roles the control port admits.
    internal_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    # Further environment of every coreapp started from now on (`use_cloud_api` sets it).
    coreapp_env: dict[str, str] = field(default_factory=dict)
    # Further environment of every webapp started from now on (e.g. the Cloud webhook secrets).
    webapp_env: dict[str, str] = field(default_factory=dict)

    # --- set-up ------------------------------------------------------------------------------

    def _env(self, name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1", "KUBECONFIG": self.kubeconfig,
                Env.DATABASE_URL: self.dsn, Env.NAMESPACE: self.namespace,
                Env.LEASE_NAME: self.lease_name, Env.POD_NAME: name,
                Env.GATEWAY_URL: f"http://127.0.0.1:{self.gateway_port}",
                Env.LISTEN_HOST: "127.0.0.1", Env.ADVERTISE_HOST: "127.0.0.1",
                **(extra or {})}

    def _internal(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {Env.INTERNAL_TOKEN: self.internal_token, **(extra or {})}

    def control_headers(self) -> dict[str, str]:
        """What a caller of a coreapp's control port sends, as this cluster's masters and webapps do."""
        return bearer(self.internal_token)

    def dbupgrade(self, extra_env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "wacluster", ProcessRole.DBUPGRADE], env=self._env("dbupgrade", extra_env),
                              capture_output=True, text=True, timeout=timeout)

    def configure(self, **settings) -> None:
        values = {**DEFAULT_SETTINGS, **settings}
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            for key, value in values.items():
                conn.execute("INSERT INTO settings (key, value) VALUES (%s, %s::jsonb) "
                             "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
                             (key, json.dumps(value)))
            _notify(conn, NotifyKind.SETTINGS)

    def register(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO account (id, phone) VALUES (1, %s) ON CONFLICT (id) DO NOTHING", (self.phone,))
            _notify(conn, NotifyKind.ACCOUNT)

    def start_sandbox(self, **flags) -> Role:
        self.gateway_port = free_port()
        argv = [sys.executable, "-m", "wacluster", ProcessRole.SANDBOX, "--host", "127.0.0.1", "--port",
                str(self.gateway_port), "--metrics-port", "0"]
        for key, value in flags.items():
            argv += [f"--{key.replace('_', '-')}", str(value)]
        role = Role("sandbox", "sandbox", argv, self._env("sandbox"), self.workdir / "sandbox.log",
                    self.gateway_port).start()
        self.roles["sandbox"] = role
        self._wait_http(f"http://127.0.0.1:{self.gateway_port}/inspect")
        return role

    def start_master(self, name: str, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> Role:
        """`args`: further command-line options of `wacluster master`."""
        argv = [sys.executable, "-m", "wacluster", ProcessRole.MASTER, "--metrics-port", "0", *args]
        role = Role(name, "master", self._launch(argv, "master", name), self._env(name, self._internal(env)),
                    self.workdir / f"{name}.log").start()
        self.roles[name] = role
        return role

    def start_coreapp(self, name: str, args: tuple[str, ...] = ()) -> Role:
        """`args`: further command-line options of `wacluster coreapp`."""
        port = free_port()
        # The webapps' media directory (start_webapp): in a pod, the shared media volume.
        argv = [sys.executable, "-m", "wacluster", ProcessRole.COREAPP, "--port", str(port), "--metrics-port", "0",
                "--media-dir", str(self.workdir / "media"), *args]
        role = Role(name, "coreapp", self._launch(argv, "coreapp", name),
                    self._env(name, self._internal(self.coreapp_env)), self.workdir / f"{name}.log", port).start()
        self.roles[name] = role
        return role

    def use_cloud_api(self, base_url: str, access_token: str, phone_number_id: str,
                      messages_per_second: float | None = None) -> None:
        """Coreapps started from now on send through a (local) Cloud API instead of the sandbox."""
        self.coreapp_env = {Env.GATEWAY_MODE: "cloud", Env.CLOUD_BASE_URL: base_url,
                            Env.CLOUD_ACCESS_TOKEN: access_token, Env.CLOUD_PHONE_NUMBER_ID: phone_number_id}
        if messages_per_second is not None:
            self.coreapp_env[Env.CLOUD_MESSAGES_PER_SECOND] = str(messages_per_second)

    def _launch(self, argv: list[str], kind: str, name: str) -> list[str]:
        return self.network.wrap(argv, kind, name) if self.network is not None else argv

    def _wait_http(self, url: str, timeout: float = 60) -> None:
        context = ssl._create_unverified_context()  # our own self-signed test certificate

        def answers():
            try:
                with urllib.request.urlopen(url, timeout=1, context=context):
                    return True
            except OSError:
                return False
        eventually(answers, timeout, interval=0.1, what=f"{url} answering")

    def start_webapp(self, name: str = "webapp", password: str = "secret-admin-password",
                     plain_http: bool = False, token_ttl: float | None = None, media_max_bytes: int | None = None,
                     webhook_allowed_networks: str = "127.0.0.0/8", args: tuple[str, ...] = ()) -> Role:
        """`args`: further command-line options of `wacluster webapp`."""
        port = free_port()
        argv = [sys.executable, "-m", "wacluster", ProcessRole.WEBAPP, "--host", "127.0.0.1", "--port", str(port),
                "--metrics-port", "0", "--media-dir", str(self.workdir / "media"), *args]
        if token_ttl is not None:
            argv += ["--token-ttl", str(token_ttl)]
        if media_max_bytes is not None:
            argv += ["--media-max-bytes", str(media_max_bytes)]
        if plain_http:
            argv.append("--plain-http")
        role = Role(name, "webapp", self._launch(argv, "webapp", name), self._env(name, self._internal({
            Env.ADMIN_PASSWORD: password, Env.WEBHOOK_SIGNING_KEY: WEBHOOK_SIGNING_KEY,
            # The tests' webhook receivers listen on loopback, which a cluster refuses by default.
            Env.WEBHOOK_ALLOWED_NETWORKS: webhook_allowed_networks, **self.webapp_env})),
                    self.workdir / f"{name}.log", port).start()
        self.roles[name] = role
        scheme = "http" if plain_http else "https"
        self._wait_http(f"{scheme}://127.0.0.1:{port}/v1/openapi.json")
        return role

    def stop_all(self, timeout: float = 15) -> None:
        """SIGTERM everything at once, then wait; whatever is still running after `timeout` is killed."""
        roles = [r for r in self.roles.values() if r.alive]
        for role in roles:
            role.signal(signal.SIGCONT)
            role.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for role in roles:
            if role.wait(max(0.1, deadline - time.monotonic())) is None:
                role.proc.kill()
                role.proc.wait()

    # --- observation ---------------------------------------------------------------------------

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def shard_owners(self, serving_only: bool = True) -> dict[int, tuple[str | None, int]]:
        """shard -> (coreapp, epoch); with serving_only, a shard counts when its owner is connected."""
        rows = self.query(
            "SELECT s.shard, s.coreapp, s.epoch, n.gateway_status, s.lease_until > now() AND NOT s.revoked "
            "FROM shard_map s LEFT JOIN nodes n ON n.name = s.coreapp ORDER BY s.shard")
        out = {}
        for shard, coreapp, epoch, gateway, live in rows:
            ok = coreapp and (not serving_only or (gateway == "connected" and live))
            out[shard] = (coreapp if ok else None, epoch)
        return out

    def primary_master(self) -> str | None:
        rows = self.query("SELECT name FROM nodes WHERE role = 'master' AND is_primary")
        return rows[0][0] if len(rows) == 1 else (None if not rows else "SEVERAL:" + ",".join(r[0] for r in rows))

    def lease_holder(self) -> str | None:
        out = subprocess.run(
            [_kubectl(), f"--kubeconfig={self.kubeconfig}", "get", "lease", self.lease_name, "-n", self.namespace,
             "-o", "jsonpath={.spec.holderIdentity}"], capture_output=True, text=True)
        return out.stdout.strip() or None

    def delete_lease(self) -> None:
        """Delete the masters' Lease, as a hand, a namespace deletion or a new cluster would."""
        subprocess.run([_kubectl(), f"--kubeconfig={self.kubeconfig}", "delete", "lease", self.lease_name,
                        "-n", self.namespace, "--ignore-not-found", "--wait=false"],
                       capture_output=True, text=True, timeout=30, check=True)

    def watch_lease(self) -> LeaseWatch:
        """Every state of the master Lease from now on (start it once the Lease exists)."""
        log = self.workdir / f"lease-watch-{uuid.uuid4().hex[:6]}.log"
        return LeaseWatch(_kubectl(), self.kubeconfig, self.namespace, self.lease_name, log).start()

    def gateway(self, path: str = "/inspect") -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.gateway_port}{path}", timeout=5) as resp:
            return json.loads(resp.read())

    def gateway_faults(self, **faults: float) -> dict:
        """Arm the sandbox's network faults (`reset_on_send`, `swallow_sends`, `ack_delay`: see runtime/sandbox.py);
        returns the faults armed and those that already struck."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.gateway_port}/faults", method="POST",
                                         data=json.dumps(faults).encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as resp:
            return json.loads(resp.read())


def _kubectl() -> str:
    from wacluster_testenv.build import bin_dir

    return str(bin_dir() / "kubectl")


def _notify(conn: psycopg.Connection, kind: NotifyKind) -> None:
    """Tell the roles listening on the cluster's channel what changed, as the master would."""
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps({"kind": kind.value})))
