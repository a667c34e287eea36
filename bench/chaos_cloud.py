"""The chaos benchmark's cloud mode (bench/chaos.py --gateway cloud): the cluster sending through the
local Cloud API (bench/cloud_api.py), registered through /v1/account, the Cloud API's status
webhooks following the webapp; and what the run reads back: each coreapp's metrics across its
restarts, the roles' log lines, and the cause of every extra send."""

from __future__ import annotations

import re
import threading
import time
import urllib.request

from chaos_faults import Run
from cloud_api import CloudApiControl
from wacluster.api.interprocess import Env
from wacluster_testenv.apiclient import ApiClient
from wacluster_testenv.cloudapi import DEFAULT_DISPLAY_PHONE_NUMBER, DEFAULT_PHONE_NUMBER_ID
from wacluster_testenv.eventually import eventually
from wacluster_testenv.processes import free_port

# Cloud mode. The Cloud API's limit is far above the chaos load (about 100-300 a second here).
CLOUD_TOKEN = "bench-chaos-cloud-token"
CLOUD_APP_SECRET = "bench-chaos-cloud-app-secret"
CLOUD_VERIFY_TOKEN = "bench-chaos-verify-token"
CLOUD_RATE = 1000
CLOUD_PIN = "135790"
CLOUD_WEBHOOK_PATH = "/cloud/webhook"  # the webapp's default (runtime/webapp/cloud_webhooks.py)
CLOUD_ACCOUNT = ("1", DEFAULT_DISPLAY_PHONE_NUMBER[1:])
IN_DOUBT_WINDOW = 30.0  # the coreapp's default --cloud-in-doubt-window
RESENT = "wacluster_cloud_in_doubt_resent_total"
THROTTLED = "wacluster_cloud_throttled_total"
RESENT_LINE = re.compile(r"(\d+) message\(s\) were being sent when their session ended.*sending them again")
SETTLED_LINE = re.compile(r"message (\S+) was in doubt; a Cloud status webhook settled it (\w+)")



def point_webhooks(cloud: CloudApiControl, webapp) -> None:
    """The Cloud API's status webhooks go to this webapp's Cloud webhook endpoint (self-signed TLS)."""
    cloud.call("POST", "/_control/config", {"webhook_url": f"https://127.0.0.1:{webapp.port}{CLOUD_WEBHOOK_PATH}",
                                            "webhook_verify_tls": False})


def start_cloud_cluster(run: Run, masters: int, coreapps: int, shards: int, settings: dict) -> ApiClient:
    """The cluster in cloud mode: coreapps (each with a metrics port) and a webapp sending and
    registering through the Cloud API, the webapp taking its status webhooks; registered through
    /v1/account and /v1/account/verify (the two-step PIN)."""
    cluster, cloud = run.cluster, run.cloud
    result = cluster.dbupgrade()
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    cluster.configure(shards=shards, **settings)
    cluster.use_cloud_api(cloud.base, CLOUD_TOKEN, DEFAULT_PHONE_NUMBER_ID, CLOUD_RATE)
    cluster.webapp_env = {**cluster.coreapp_env, Env.CLOUD_APP_SECRET: CLOUD_APP_SECRET,
                          Env.CLOUD_VERIFY_TOKEN: CLOUD_VERIFY_TOKEN}
    for i in range(1, masters + 1):
        cluster.start_master(f"master{i}")
    for i in range(1, coreapps + 1):
        name = f"wacore{i}"
        run.coreapp_args[name] = ("--metrics-port", str(free_port()))
        cluster.start_coreapp(name, run.coreapp_args[name])
    role = cluster.start_webapp(password=run.password)
    point_webhooks(cloud, role)
    run.on_webapp = lambda webapp: point_webhooks(cloud, webapp)
    api = ApiClient(f"https://127.0.0.1:{role.port}")
    api.login("admin", run.password)
    cc, number = run.account = CLOUD_ACCOUNT
    eventually(cluster.primary_master, 60, what="a primary master")
    for path, body, status in (("/v1/account", {"cc": cc, "phone_number": number, "method": "sms"}, 202),
                               ("/v1/account/verify", {"code": CLOUD_PIN}, 201)):
        reply = api.request("POST", path, body)
        if reply.status != status:
            raise RuntimeError(f"{path}: {reply.status} {reply.body}")
    eventually(lambda: len(cluster.shard_owners()) == shards and all(o[0] for o in cluster.shard_owners().values()),
               60, what=f"{shards} shard(s) served through the Cloud API")
    return api


class CoreappMetrics:
    """Samples counters of every live coreapp once a second. A counter lives as long as its process
    (a killed coreapp's is gone), so each process's last value is kept, by pid."""

    def __init__(self, run: Run, names: tuple[str, ...]) -> None:
        self.run, self.names = run, names
        self.last: dict[tuple[str, int], dict[str, float]] = {}
        self.running = threading.Event()
        self.thread = threading.Thread(target=self._sample_loop, daemon=True)

    def start(self) -> "CoreappMetrics":
        self.running.set()
        self.thread.start()
        return self

    def stop(self) -> None:
        self.running.clear()
        self.thread.join(timeout=10)
        self.sample()

    def _sample_loop(self) -> None:
        while self.running.is_set():
            self.sample()
            time.sleep(1.0)

    def sample(self) -> None:
        for name, args in list(self.run.coreapp_args.items()):
            role = self.run.cluster.roles.get(name)
            if role is None or not role.alive:
                continue
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{args[-1]}/metrics", timeout=2) as resp:
                    text = resp.read().decode()
            except OSError:
                continue  # stopped, starting or just killed
            self.last[(name, role.proc.pid)] = {
                metric: sum(float(v) for v in re.findall(rf"^{re.escape(metric)}(?:{{[^}}]*}})? ([0-9.e+-]+)$",
                                                         text, re.M)) for metric in self.names}

    def total(self, metric: str) -> int:
        return int(sum(values.get(metric, 0.0) for values in self.last.values()))


def _stamp(line: str) -> float:
    """The wall-clock time of a role's log line (logging's default `asctime`, local time)."""
    try:
        return time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) + int(line[20:23]) / 1000
    except ValueError:
        return float("-inf")


def logged(run: Run, pattern: re.Pattern, kind: str = "coreapp") -> list[tuple[float, str, tuple, str]]:
    """(time, role, groups, line) of each line of the roles of `kind` matching `pattern`, by time."""
    found = []
    for role in run.cluster.roles.values():
        if role.kind == kind:
            for line in role.output().splitlines():
                if match := pattern.search(line):
                    found.append((_stamp(line), role.name, match.groups(), line.strip()))
    return sorted(found)


def settle(cluster, ids: list[str], timeout: float) -> float:
    """Wait (bounded) until no accepted message is queued or claimed any more; the seconds it took."""
    began = time.time()
    while time.time() - began < timeout:
        open_rows = cluster.query("SELECT count(*) FROM messages WHERE id = ANY(%s) AND status IN ('queued', 'claimed')",
                                  (ids,))[0][0]
        if open_rows == 0:
            break
        time.sleep(1.0)
    return round(time.time() - began, 1)


def duplicate_causes(run: Run, sends: list[dict]) -> list[dict]:
    """Each send of an id after its first, with its cause: an in-doubt resend when a coreapp logged
    "N message(s) ... sending them again" at most 60 s before it (and 1 s after: log and send
    clocks are read apart) and not all N of that line were matched already; "unexplained" else."""
    lines = [[at, role, int(groups[0]), line] for at, role, groups, line in logged(run, RESENT_LINE)]
    by_id: dict[str, list[dict]] = {}
    for send in sends:
        if send["callback_data"] is not None:
            by_id.setdefault(send["callback_data"], []).append(send)
    extra = sorted((s["at"], i, s["wamid"], ss[0]["at"]) for i, ss in by_id.items() if len(ss) > 1
                   for s in sorted(ss, key=lambda s: s["at"])[1:])
    out = []
    for at, message_id, wamid, first_at in extra:
        candidates = [entry for entry in lines if at - 60.0 <= entry[0] <= at + 1.0 and entry[2] > 0]
        record = {"id": message_id, "first_sent_at": round(first_at, 3), "again_at": round(at, 3), "wamid": wamid}
        if candidates:
            entry = candidates[-1]
            entry[2] -= 1
            record.update(cause="in_doubt_resend", coreapp=entry[1], logged=entry[3])
        else:
            record["cause"] = "unexplained"
        out.append(record)
    return out


