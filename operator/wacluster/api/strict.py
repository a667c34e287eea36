"""The base of every REST body model: unknown fields are errors, so a typo (or a field the
on-premises API never had) is refused with its name instead of passing silently."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
