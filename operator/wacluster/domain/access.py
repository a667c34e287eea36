"""Who may call what: the API's two roles. ADMIN may do everything; USER may send messages, check
contacts, use media and read settings and health, but may not change settings, the account or
certificates, nor manage users (except changing its own password). The on-premises API's rule that
only the admin manages users, widened to every account of the ADMIN role."""

from __future__ import annotations

SELF_SERVICE = {"/v1/users/login", "/v1/users/logout"}
# Paths under which every change (anything but GET and HEAD) is the admin's.
ADMIN_CHANGES = ("/v1/settings", "/v1/account", "/v1/certificates")
# Reads that are the admin's too: the on-premises reference keeps retrieving the webhook CA to it.
ADMIN_READS = {"/v1/certificates/webhooks/ca"}


def needs_admin(method: str, path: str, username: str) -> bool:
    """Whether `username` needs the ADMIN role to call `method path`."""
    if path in SELF_SERVICE:
        return False
    if path == "/v1/users" or path.startswith("/v1/users/"):
        own = path == f"/v1/users/{username}"
        return not (own and method in ("GET", "HEAD", "PUT"))
    if method in ("GET", "HEAD"):
        return path in ADMIN_READS
    return any(path == prefix or path.startswith(prefix + "/") for prefix in ADMIN_CHANGES)
