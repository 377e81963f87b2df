"""The base of every settings model: frozen, and unknown fields refused."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Frozen"]


class Frozen(BaseModel):
    """Validated once at the edge, never changed after: ``frozen=True, extra="forbid"``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
