"""Which receivers' TLS certificates webhook deliveries trust: the system CAs plus the webhook CA
uploaded through POST /v1/certificates/webhooks/ca (certificates.py), read with each dispatch round
so an upload or deletion applies within a round on every webapp. The TLS context is rebuilt only
when the bundle changes: loading CAs costs more than a delivery."""

from __future__ import annotations

import logging
import ssl

from psycopg import AsyncConnection

from wacluster.crypto.ca_bundle import verifying_context
from wacluster.db import certificates as certificates_db

log = logging.getLogger("wacluster.webapp")


class WebhookTrust:
    def __init__(self) -> None:
        self.bundle: str | None = None
        self.context = verifying_context(None)

    async def refresh(self, conn: AsyncConnection) -> ssl.SSLContext:
        """The context for this round's deliveries."""
        bundle = await certificates_db.read(conn, certificates_db.WEBHOOKS_CA)
        if bundle != self.bundle:
            try:
                self.context = verifying_context(bundle)
            except ssl.SSLError as exc:  # checked at upload; a bundle OpenSSL refuses adds nothing
                log.warning("the webhook CA certificate cannot be used (%s); verifying with the system CAs", exc)
                self.context = verifying_context(None)
            self.bundle = bundle
        return self.context
