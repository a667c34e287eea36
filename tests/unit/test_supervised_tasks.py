"""No long-lived task of a role starts outside the supervisor (runtime/supervision.py): a task
created with `asyncio.create_task` that dies ends silently, so the roles may create tasks only
where their end is awaited by the code that created them. This scans the roles' source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
RUNTIME = Path(__file__).resolve().parents[2] / "operator" / "wacluster" / "runtime"

# Where a task is created on purpose, and who awaits its end.
AWAITED_BY_THEIR_CREATOR = {
    "supervision.py": "the supervisor itself",
    "service.py": "first_of: awaits the first and cancels the rest",
    "gateway_link.py": "the connection's reader: its end closes the link, which the sender sees",
    "webapp/batching.py": "a shard's flusher: every waiter gets its result or its exception",
    "coreapp/handoff.py": "a maintenance handoff the master asked for: it logs any failure and ends a standby; "
                          "the SIGTERM handoff awaits it before it starts",
    "coreapp/cloud_gateway.py": "the Cloud driver's dispatcher, sends, media uploads and credential checks: a failure closes "
                                "the driver (on_closed fences the session); close() cancels and awaits them",
}
SPAWNERS = {"create_task", "ensure_future"}


def spawns(path: Path) -> list[int]:
    tree = ast.parse(path.read_text())
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name))
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) in SPAWNERS]


def test_roles_start_long_lived_tasks_only_under_the_supervisor():
    unsupervised = {}
    for path in sorted(RUNTIME.rglob("*.py")):
        relative = path.relative_to(RUNTIME).as_posix()
        lines = spawns(path)
        if lines and relative not in AWAITED_BY_THEIR_CREATOR:
            unsupervised[relative] = lines
    assert not unsupervised, f"tasks started outside runtime/supervision.py: {unsupervised}"


def test_the_scan_sees_a_task_started_by_hand(tmp_path):
    module = tmp_path / "role.py"
    module.write_text("import asyncio\nasync def main():\n    asyncio.create_task(work())\n")
    assert spawns(module) == [3]
