"""Where the environments keep their state."""

from __future__ import annotations

import os
from pathlib import Path


def state_root() -> Path:
    # Under /tmp, not ~/.cache: the PostgreSQL server runs as an unprivileged user and must be
    # able to reach its data directory; only the built binaries are cached in the home directory.
    return Path(os.environ.get("WACLUSTER_TESTENV_DIR", "/tmp/wacluster-testenv"))
