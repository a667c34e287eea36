"""A test session stopped with SIGTERM (a CI limit, `timeout`) still tears its servers down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from wacluster_testenv.eventually import eventually
from wacluster_testenv.processes import ProcessTable, command_lines_naming

pytestmark = pytest.mark.harness
ROOT = Path(__file__).resolve().parents[2]

HOLDING_TEST = '''
import time
def test_hold(postgres_server):
    print("READY", postgres_server.state_dir, flush=True)
    time.sleep(300)
'''


def test_a_session_stopped_with_sigterm_leaves_no_server_running(tmp_path):
    (tmp_path / "test_hold.py").write_text(HOLDING_TEST)
    log = tmp_path / "session.log"
    # The suite's own conftest, loaded as a plugin by a session rooted in tmp_path.
    session = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "conftest", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), str(tmp_path / "test_hold.py")],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT / "tests")},
        stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    state_dir = None
    try:
        ready = eventually(lambda: next((line for line in log.read_text().splitlines() if line.startswith("READY")), None),
                           120, what="the session's PostgreSQL up", details=lambda: log.read_text()[-2000:])
        state_dir = ready.split()[1]
        assert command_lines_naming(state_dir)
        session.send_signal(signal.SIGTERM)
        session.wait(timeout=120)
        assert command_lines_naming(state_dir) == []
        assert not Path(state_dir).exists()
    finally:
        if session.poll() is None:
            session.kill()
        if state_dir:  # what a failed teardown left behind is stopped here, not left running
            ProcessTable(Path(state_dir)).stop_all()
