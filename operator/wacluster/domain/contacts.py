"""Contact checks (POST /v1/contacts), the pure part: how a number as a client writes it becomes
the key it is checked and cached under, and how long a check stays good."""

from __future__ import annotations

import re
from datetime import timedelta

# The on-premises API keeps a contact check for 7 days; `force_check` bypasses the cache.
CHECK_EXPIRY = timedelta(days=7)

_NOT_DIGITS = re.compile(r"[^0-9]")


def normalise_number(given: str) -> str | None:
    """The digits of a phone number in any standard format ('+1 (631) 555-1004' → '16315551004'),
    or None when it cannot be one (letters, or not 7 to 15 digits as E.164 allows)."""
    if re.search(r"[^0-9+()\-.\s]", given):
        return None
    digits = _NOT_DIGITS.sub("", given)
    return digits if 7 <= len(digits) <= 15 else None
