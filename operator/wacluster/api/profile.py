"""Bodies of the profile endpoints (/v1/settings/profile/about, /v1/settings/profile/photo,
/v1/settings/business/profile), with the limits the on-premises reference documents."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from wacluster.api.rest import Meta
from wacluster.api.strict import Strict

PHOTO_TYPES = ("image/jpeg", "image/png")
PHOTO_MAX_BYTES = 5 * 1024 * 1024

# The industries the reference lists for `vertical` ("" clears it).
Vertical = Literal[
    "", "Automotive", "Beauty, Spa and Salon", "Clothing and Apparel", "Education", "Entertainment",
    "Event Planning and Service", "Finance and Banking", "Food and Grocery", "Public Service", "Hotel and Lodging",
    "Medical and Health", "Non-profit", "Professional Services", "Shopping and Retail",
    "Travel and Transportation", "Restaurant", "Other"]


Website = Annotated[str, StringConstraints(max_length=256, pattern=r"^https?://\S+$")]


def _no_nul(value):
    """PostgreSQL text cannot hold U+0000: refused here, with its field's name, not at the INSERT."""
    texts = value if isinstance(value, list) else [value]
    if any(isinstance(t, str) and "\x00" in t for t in texts):
        raise ValueError("must not contain the NUL character (U+0000)")
    return value


class AboutRequest(Strict):
    text: str = Field(..., min_length=1, max_length=139, description="the profile's about text")

    _text = field_validator("text")(_no_nul)


class BusinessProfile(Strict):
    address: str | None = Field(None, max_length=256)
    description: str | None = Field(None, max_length=256)
    email: str | None = Field(None, max_length=128, pattern=r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$")
    vertical: Vertical | None = None
    websites: list[Website] | None = Field(
        None, max_length=2, description="at most two, each starting with http:// or https://")

    _texts = field_validator("address", "description", "email", "websites")(_no_nul)


class AboutText(Strict):
    text: str | None = None


class ProfileAbout(Strict):
    about: AboutText


class AboutSettings(Strict):
    profile: ProfileAbout


class AboutResponse(Strict):
    settings: AboutSettings
    meta: Meta | None = None


class BusinessSettings(Strict):
    business: dict[Literal["profile"], BusinessProfile]


class BusinessProfileResponse(Strict):
    settings: BusinessSettings
    meta: Meta | None = None
