"""A long Go step of `testenv build` says it is alive and how far it got while it runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from wacluster_testenv.build import Progress, _run

pytestmark = pytest.mark.harness

# Stands in for `go build -v`: one line per package, slower than the heartbeat.
SLOW_BUILD = "import sys, time\nfor n in range(4):\n    print(f'pkg/{n}', flush=True)\n    time.sleep(0.3)\n"


def test_a_running_step_reports_its_count_at_every_heartbeat(tmp_path: Path):
    lines: list[str] = []
    _run([sys.executable, "-c", SLOW_BUILD], tmp_path, Progress(emit=lines.append), "compiling demo",
         "packages compiled", total=10, heartbeat=0.1)
    assert len(lines) >= 3
    assert all("compiling demo:" in line and "of at most 10 packages compiled so far" in line for line in lines)
    counts = [int(line.split("compiling demo: ")[1].split()[0]) for line in lines]
    assert counts == sorted(counts) and counts[-1] >= 3


def test_a_failed_step_raises_with_its_output(tmp_path: Path, capsys):
    with pytest.raises(RuntimeError, match="exit 3"):
        _run([sys.executable, "-c", "print('broken package'); raise SystemExit(3)"], tmp_path)
    assert "broken package" in capsys.readouterr().err
