"""The webhook CA certificate (POST /v1/certificates/webhooks/ca): a PEM bundle of one or more
CA certificates the receivers' TLS certificates may chain to, checked when it is uploaded and turned
into the TLS context webhook deliveries verify with."""

from __future__ import annotations

import ssl

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

MAX_BYTES = 256 * 1024  # a bundle of a few dozen certificates; anything larger is not a CA bundle


class InvalidBundle(ValueError):
    pass


def normalised_bundle(pem: bytes) -> str:
    """The bundle as PEM certificates only (no keys, no comments), or InvalidBundle saying why."""
    if b"PRIVATE KEY" in pem:
        # A key sent by mistake must not be stored (and returned by GET): refuse the whole upload.
        raise InvalidBundle("the body contains a private key; upload only the CA certificate(s)")
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except (ValueError, TypeError) as exc:
        raise InvalidBundle(f"the body is not PEM certificates ({exc}); send the CA certificate(s) as "
                            "-----BEGIN CERTIFICATE----- blocks") from None
    bundle = "".join(c.public_bytes(Encoding.PEM).decode() for c in certificates)
    try:  # what deliveries will do with it: refused now rather than failing every delivery later
        verifying_context(bundle)
    except ssl.SSLError as exc:
        raise InvalidBundle(f"TLS cannot use these certificates: {exc}") from None
    return bundle


def verifying_context(bundle: str | None) -> ssl.SSLContext:
    """A client TLS context that verifies against the system CAs plus `bundle`: the on-premises
    API asks for the CA only when the receiver's is internal, so public CAs keep working."""
    context = ssl.create_default_context()
    if bundle:
        context.load_verify_locations(cadata=bundle)
    return context
