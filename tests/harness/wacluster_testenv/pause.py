"""The real node's sandbox ("pause") image, made here: no registry is reachable to pull one.

pause.c is compiled statically with the machine's C compiler and packed as a one-layer image in
the `docker save` layout, which `ctr images import` reads; no Docker engine is needed for it.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

from wacluster_testenv.build import cache_root

SOURCE = Path(__file__).with_name("pause.c")


def _binary() -> Path:
    out = cache_root() / "pause" / "pause"
    if out.exists() and out.stat().st_mtime >= SOURCE.stat().st_mtime:
        return out
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("building the pause image needs a C compiler: apt-get install -y gcc libc6-dev")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    proc = subprocess.run([compiler, "-static", "-Os", "-o", str(partial), str(SOURCE)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"compiling {SOURCE} failed: {proc.stderr.strip()}")
    partial.replace(out)
    return out


def _tar(members: dict[str, tuple[bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, (data, mode) in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def image_archive(reference: str) -> bytes:
    """A `docker save`-format archive holding the pause image under ``reference`` (name:tag)."""
    layer = _tar({"pause": (_binary().read_bytes(), 0o755)})
    layer_digest = hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
    }).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [reference],
                            "Layers": [f"{layer_digest}/layer.tar"]}]).encode()
    return _tar({config_name: (config, 0o644), f"{layer_digest}/layer.tar": (layer, 0o644),
                 "manifest.json": (manifest, 0o644)})
