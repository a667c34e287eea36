"""The API's TLS: the certificate from the cluster's TLS Secret, reloaded when the Secret
changes (the operator renews a generated certificate at two thirds of its lifetime; kubelet
swaps the mounted files), so a renewal needs no restart and no connection is dropped."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
import tempfile
from pathlib import Path

from wacluster.crypto.credentials import self_signed_certificate

log = logging.getLogger("wacluster.webapp")

# How often the mounted files are compared: kubelet itself refreshes Secret volumes about once a
# minute, so checking more often gains nothing.
RELOAD_CHECK_SECONDS = 10.0


def tls_context(directory: str | None) -> ssl.SSLContext:
    """The certificate from the cluster's TLS Secret, or a self-signed one when there is none."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    files = _files(directory)
    if files:
        context.load_cert_chain(*files)
        return context
    log.warning("no TLS certificate in %s; serving a self-signed one", directory)
    generated = self_signed_certificate(["localhost"])
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "c").write_bytes(generated.cert_pem)
        (Path(tmp) / "k").write_bytes(generated.key_pem)
        context.load_cert_chain(str(Path(tmp) / "c"), str(Path(tmp) / "k"))
    return context


def _files(directory: str | None) -> tuple[str, str] | None:
    cert, key = Path(directory or "/nonexistent") / "tls.crt", Path(directory or "/nonexistent") / "tls.key"
    return (str(cert), str(key)) if cert.exists() and key.exists() else None


def _fingerprint(files: tuple[str, str]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


async def reload_on_change(context: ssl.SSLContext, directory: str | None,
                           every: float = RELOAD_CHECK_SECONDS) -> None:
    """Load the Secret's certificate into the serving context whenever the files change: new
    handshakes get the new certificate, open connections keep theirs. Never ends by itself; a
    failed check (files half-written, a bad pair) is logged and tried again at the next one."""
    files = _files(directory)
    seen = _fingerprint(files) if files else None
    while True:
        await asyncio.sleep(every)
        try:
            files = _files(directory)
            if not files:
                continue
            current = _fingerprint(files)
            if current != seen:
                context.load_cert_chain(*files)
                seen = current
                log.info("loaded the renewed API certificate from %s", directory)
        except (OSError, ssl.SSLError) as exc:
            log.warning("could not load the API certificate from %s (will retry): %s", directory, exc)
