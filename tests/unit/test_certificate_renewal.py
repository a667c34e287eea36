"""The generated API certificate is renewed at two thirds of its life, and the webapp serves the
renewed one without a restart."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl

import pytest

from wacluster.crypto.credentials import self_signed_certificate
from wacluster.domain.certificates import CertificateRecord, certificate_action
from wacluster.runtime.webapp.tls import reload_on_change, tls_context
from wacluster_testenv.eventually import eventually_async

pytestmark = pytest.mark.unit
DAY = dt.timedelta(days=1)
START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def test_a_certificate_just_created_is_recorded():
    assert certificate_action(None, created_now=True, now=START) == "record"


def test_a_year_long_certificate_is_kept_until_two_thirds_of_its_life_then_renewed():
    record = CertificateRecord(START, START + 360 * DAY)
    assert record.renew_at == START + 240 * DAY
    assert certificate_action(record, created_now=False, now=START + 239 * DAY) == "keep"
    assert certificate_action(record, created_now=False, now=START + 240 * DAY) == "renew"
    assert certificate_action(record, created_now=False, now=START + 400 * DAY) == "renew"


def test_a_certificate_whose_expiry_is_not_on_record_is_renewed_once():
    assert certificate_action(None, created_now=False, now=START) == "renew"


def test_the_record_survives_the_status_round_trip():
    record = CertificateRecord(START, START + 90 * DAY)
    status = record.to_status()
    assert status == {"notBefore": "2026-01-01T00:00:00Z", "notAfter": "2026-04-01T00:00:00Z",
                      "renewAt": "2026-03-02T00:00:00Z"}
    assert CertificateRecord.from_status(status) == record
    assert CertificateRecord.from_status({}) is None


async def _serves(port: int, der: bytes) -> bool:
    return await _served_certificate(port) == der


def _write(directory, certificate) -> None:
    (directory / "tls.crt").write_bytes(certificate.cert_pem)
    (directory / "tls.key").write_bytes(certificate.key_pem)


async def _served_certificate(port: int) -> bytes:
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return der


async def test_the_webapp_serves_a_renewed_certificate_without_a_restart(tmp_path):
    first, renewed = self_signed_certificate(["localhost"], days=30), self_signed_certificate(["localhost"], days=30)
    _write(tmp_path, first)
    context = tls_context(str(tmp_path))
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    reloader = asyncio.create_task(reload_on_change(context, str(tmp_path), every=0.05))
    try:
        assert await _served_certificate(port) == ssl.PEM_cert_to_DER_cert(first.cert_pem.decode())
        _write(tmp_path, renewed)
        wanted = ssl.PEM_cert_to_DER_cert(renewed.cert_pem.decode())
        await eventually_async(lambda: _serves(port, wanted), timeout=10, what="the renewed certificate served")
        assert not reloader.done()
    finally:
        reloader.cancel()
        server.close()
        await server.wait_closed()


async def test_a_half_written_certificate_is_retried_not_fatal(tmp_path):
    good = self_signed_certificate(["localhost"], days=30)
    _write(tmp_path, good)
    context = tls_context(str(tmp_path))
    reloader = asyncio.create_task(reload_on_change(context, str(tmp_path), every=0.02))
    (tmp_path / "tls.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\ntruncated")
    await asyncio.sleep(0.2)  # several checks see the broken pair; none may end the task
    assert not reloader.done()
    reloader.cancel()
