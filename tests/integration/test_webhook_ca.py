"""The webhook CA certificate (/v1/certificates/webhooks/ca), through a real webapp on real
PostgreSQL: a PEM bundle is uploaded as text/plain, read back and deleted (ADMIN role only, reading
included); a body that is not PEM certificates is a 400. While it is set, deliveries verify an HTTPS
receiver's certificate against it as well as the system CAs: a receiver whose certificate a private
CA signed gets nothing (TLS verification fails and the event is retried) until that CA is uploaded,
then the event is delivered; once it is deleted, verification fails again."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import ipaddress
import json
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from runtime_cluster import webapp
from wacluster_testenv.apiclient import ApiClient
from wacluster_testenv.eventually import eventually

pytestmark = pytest.mark.integration
PATH = "/v1/certificates/webhooks/ca"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def private_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name("wacluster test webhook CA"))
            .issuer_name(_name("wacluster test webhook CA")).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class Receiver(http.server.BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self):  # noqa: N802 (http.server naming)
        Receiver.received.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def ca():
    return private_ca()


@pytest.fixture
def https_receiver(ca, tmp_path):
    """An HTTPS receiver on loopback whose certificate (for 127.0.0.1) the private CA signed."""
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    (tmp_path / "receiver.pem").write_bytes(pem(cert) + pem(ca_cert))
    (tmp_path / "receiver.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "receiver.pem", tmp_path / "receiver.key")
    Receiver.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}/whatsapp"
    server.shutdown()


def queue_event(cluster, payload: dict) -> int:
    return cluster.query("INSERT INTO webhook_events (payload) VALUES (%s::jsonb) RETURNING id",
                         (json.dumps(payload),))[0][0]


def event(cluster, event_id: int) -> tuple[bool, int, str | None]:
    return cluster.query("SELECT delivered_at IS NOT NULL, attempts, last_error FROM webhook_events WHERE id = %s",
                         (event_id,))[0]


def test_the_webhook_ca_is_uploaded_read_back_and_deleted(lone_webapp, ca):
    api = webapp(lone_webapp)
    missing = api.request("GET", PATH)
    assert missing.status == 404 and missing.error["code"] == 1006
    cert = pem(ca[1])
    uploaded = api.request("POST", PATH, raw=b"# our CA\n" + cert, content_type="text/plain")
    assert uploaded.status == 200 and uploaded.body == {"meta": uploaded.body["meta"]}
    back = api.request("GET", PATH)
    assert back.status == 200 and back.raw == cert and back.headers["Content-Type"].startswith("text/plain")
    assert lone_webapp.query("SELECT pem FROM certificates WHERE name = 'webhooks_ca'") == [(cert.decode(),)]
    assert api.request("DELETE", PATH).status == 200
    assert api.request("GET", PATH).status == 404


def test_a_body_that_is_not_pem_certificates_is_refused(lone_webapp, ca):
    api = webapp(lone_webapp)
    not_pem = api.request("POST", PATH, raw=b"hello, I am a certificate", content_type="text/plain")
    assert not_pem.status == 400 and not_pem.error["code"] == 1009 and "PEM" in not_pem.error["details"]
    key = ca[0].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    with_key = api.request("POST", PATH, raw=pem(ca[1]) + key, content_type="text/plain")
    assert with_key.status == 400 and "private key" in with_key.error["details"]
    empty = api.request("POST", PATH, raw=b"", content_type="text/plain")
    assert empty.status == 400 and empty.error["code"] == 1008
    assert api.request("GET", PATH).status == 404, "nothing refused was stored"


def test_the_user_role_may_not_read_set_or_delete_the_webhook_ca(lone_webapp, ca):
    api = webapp(lone_webapp)
    assert api.request("POST", "/v1/users", {"username": "clerk", "password": "Initial-pass1!"}).status == 201
    clerk = ApiClient(api.base_url)
    basic = base64.b64encode(b"clerk:Initial-pass1!").decode()
    clerk.token = clerk.request("POST", "/v1/users/login", {"new_password": "Chosen-pass2?"}, auth=False,
                                headers={"Authorization": f"Basic {basic}"}).body["users"][0]["token"]
    for method, raw in [("GET", None), ("POST", pem(ca[1])), ("DELETE", None)]:
        reply = clerk.request(method, PATH, raw=raw, content_type="text/plain")
        assert reply.status == 403 and reply.error["code"] == 1005, (method, reply.body)


def test_a_receiver_signed_by_a_private_ca_gets_webhooks_once_that_ca_is_uploaded(lone_webapp, ca, https_receiver):
    api = webapp(lone_webapp)
    assert api.request("PATCH", "/v1/settings/application", {
        "webhooks": {"url": https_receiver}, "callback_backoff_delay_ms": 200,
        "max_callback_backoff_delay_ms": 1000}).status == 200
    first = queue_event(lone_webapp, {"statuses": [{"id": "wamid.ca1", "status": "delivered"}]})

    def refused_twice():
        delivered, attempts, error = event(lone_webapp, first)
        assert not delivered, "delivered to a receiver no CA it trusts signed"
        return attempts >= 2 and error

    error = eventually(refused_twice, 30, what="two failed attempts")
    assert "certificate verify failed" in error.lower(), error
    assert Receiver.received == []

    assert api.request("POST", PATH, raw=pem(ca[1]), content_type="text/plain").status == 200
    eventually(lambda: event(lone_webapp, first)[0], 30, what="the event delivered once the CA is set")
    assert json.loads(Receiver.received[-1]) == {"statuses": [{"id": "wamid.ca1", "status": "delivered"}]}

    assert api.request("DELETE", PATH).status == 200
    second = queue_event(lone_webapp, {"statuses": [{"id": "wamid.ca2", "status": "read"}]})
    error = eventually(lambda: event(lone_webapp, second)[2], 30, what="a failed attempt without the CA")
    assert "certificate verify failed" in error.lower() and not event(lone_webapp, second)[0]
