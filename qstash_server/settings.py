"""The server's settings, validated once at the edge (CLI or fixture)."""

from __future__ import annotations

import secrets

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from migrator.qstash_tiers import TIERS, TierLimits

__all__ = ["ServerSettings", "generate_signing_key", "generate_token"]


def generate_token() -> str:
    """A random API token (QStash tokens are opaque strings)."""
    return "qstash_local_" + secrets.token_urlsafe(24)


def generate_signing_key() -> str:
    """A random signing key shaped like QStash's (``sig_`` + random characters)."""
    return "sig_" + secrets.token_urlsafe(21)


class ServerSettings(BaseModel):
    """Everything the local QStash server needs to run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    db: str = ":memory:"
    token: SecretStr = Field(default_factory=lambda: SecretStr(generate_token()))
    current_signing_key: SecretStr = Field(
        default_factory=lambda: SecretStr(generate_signing_key())
    )
    next_signing_key: SecretStr = Field(default_factory=lambda: SecretStr(generate_signing_key()))
    backoff_scale: float = Field(default=1.0, ge=0.0)
    accept_only: bool = False
    plan: str = "payg"
    fault_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    fault_statuses: tuple[int, ...] = (429, 503)
    delivery_concurrency: int = Field(default=256, ge=1)
    public_url: str | None = None
    # > 0: a filter-based bulk cancel runs in the background and takes effect this much later,
    # as on QStash's newer API (engine/bulk_actions.py); 0: synchronous
    cancel_delay_ms: int = Field(default=0, ge=0, le=3_600_000)

    @field_validator("plan")
    @classmethod
    def _known_plan(cls, value: str) -> str:
        if value not in TIERS:
            raise ValueError(f"unknown plan {value!r}; use one of {', '.join(TIERS)}")
        return value

    @field_validator("fault_statuses")
    @classmethod
    def _fault_statuses(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("fault statuses must name at least one status, e.g. 429,503")
        for status in value:
            if not 400 <= status <= 599:
                raise ValueError(f"fault status {status} is not an HTTP error status (400-599)")
        return value

    @property
    def limits(self) -> TierLimits:
        return TIERS[self.plan]
