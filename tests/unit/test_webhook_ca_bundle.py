"""The webhook CA upload: PEM certificates are kept (normalised, comments dropped), anything else
is refused saying why, a private key is never stored; reading it back is the admin's."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from wacluster.crypto.ca_bundle import InvalidBundle, normalised_bundle, verifying_context
from wacluster.domain.access import needs_admin

pytestmark = pytest.mark.unit


def ca(name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def test_a_bundle_of_two_cas_is_kept_without_its_comments():
    first, _ = ca("first")
    second, _ = ca("second")
    bundle = normalised_bundle(b"# our internal CAs\n" + first + b"\n" + second)
    assert bundle == (first + second).decode()
    assert len(verifying_context(bundle).get_ca_certs()) >= 2


@pytest.mark.parametrize("body", [b"hello", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                                  "\u00e9\x00".encode()])
def test_what_is_not_pem_certificates_is_refused(body):
    with pytest.raises(InvalidBundle, match="PEM"):
        normalised_bundle(body)


def test_a_private_key_in_the_upload_is_refused_whole():
    cert, key = ca("with its key")
    with pytest.raises(InvalidBundle, match="private key"):
        normalised_bundle(cert + key)


def test_reading_the_webhook_ca_is_the_admins_as_documented():
    assert needs_admin("GET", "/v1/certificates/webhooks/ca", "clerk")
    assert not needs_admin("GET", "/v1/settings/application", "clerk")
