"""Bodies of the users endpoints (/v1/users, /v1/users/login, /v1/users/{username}), after the
on-premises API: a user name of 4 to 32 characters, a password of 8 to 64 characters with at least
one digit, one upper-case and one lower-case letter and one special character."""

from __future__ import annotations

import string
from enum import Enum

from pydantic import Field, field_validator

from wacluster.api.rest import Meta
from wacluster.api.strict import Strict

class UserRole(str, Enum):
    """ADMIN may do everything; USER what domain/access.py leaves it."""
    ADMIN = "ADMIN"
    USER = "USER"


# The special characters the on-premises reference lists.
SPECIALS = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
# No ':' (HTTP Basic's separator) nor '/' (the user's path), nothing invisible.
USERNAME_PATTERN = r"^[A-Za-z0-9._@+-]{4,32}$"


def password_problem(password: str) -> str | None:
    """What the password lacks, or None when it meets the policy."""
    if not 8 <= len(password) <= 64:
        return "must be between 8 and 64 characters long"
    missing = [what for what, chars in (("a digit", string.digits), ("an upper-case letter", string.ascii_uppercase),
                                        ("a lower-case letter", string.ascii_lowercase),
                                        ("a special character", SPECIALS))
               if not any(c in chars for c in password)]
    return f"needs at least {', '.join(missing)}" if missing else None


def _checked(password: str) -> str:
    problem = password_problem(password)
    if problem:
        raise ValueError(f"the password {problem}")
    return password


class CreateUser(Strict):
    username: str = Field(..., pattern=USERNAME_PATTERN, description="4 to 32 letters, digits or . _ @ + -")
    password: str = Field(..., description="8 to 64 characters: a digit, an upper-case and a lower-case letter "
                                           "and a special character")
    role: UserRole = Field(UserRole.USER, description="wacluster's addition: ADMIN may also change settings and "
                                                      "manage users")

    _password = field_validator("password")(_checked)


class UpdateUser(Strict):
    password: str = Field(..., description="the new password (same policy as on creation)")

    _password = field_validator("password")(_checked)


class LoginRequest(Strict):
    new_password: str | None = Field(None, description="required on a user's first login: the password to "
                                                       "use from now on")

    @field_validator("new_password")
    @classmethod
    def _policy(cls, value: str | None) -> str | None:
        return None if value is None else _checked(value)


class UserName(Strict):
    username: str
    role: UserRole | None = None


class UsersResponse(Strict):
    users: list[UserName]
    meta: Meta | None = None
