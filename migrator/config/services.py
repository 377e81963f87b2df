"""Connections to HTTP services: a REST service (Schema Registry, Kafka Connect) and QStash."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import Field, SecretStr

from migrator.config.frozen import Frozen
from migrator.errors import ConfigError

__all__ = ["UPSTASH_URL", "BasicAuth", "QStashConnection", "RestConnection"]

UPSTASH_URL = "https://qstash.upstash.io"


class BasicAuth(Frozen):
    """HTTP basic credentials for a REST service."""

    username: str
    password: SecretStr


class RestConnection(Frozen):
    """A REST service (Schema Registry or Kafka Connect): base URL and optional basic auth."""

    url: str
    auth: BasicAuth | None = None
    timeout: float = Field(10.0, gt=0)

    def httpx_auth(self) -> tuple[str, str] | None:
        if self.auth is None:
            return None
        return (self.auth.username, self.auth.password.get_secret_value())


class QStashConnection(Frozen):
    """A QStash endpoint: Upstash's service or the local server, and the token it takes.

    The one type every command passes a QStash endpoint around as (never a ``(url, token)``
    tuple); the token stays a ``SecretStr`` until the HTTP client needs it.
    """

    url: str = Field(UPSTASH_URL, description="QStash base URL.")
    token: SecretStr = Field(description="QStash bearer token.")

    @classmethod
    def from_env(
        cls,
        url: str | None = None,
        token: str | SecretStr | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        where: str = "pass --qstash-token",
    ) -> QStashConnection:
        """``url``/``token`` as given, else QSTASH_URL / QSTASH_TOKEN, else Upstash's URL.
        No token: ConfigError saying to set QSTASH_TOKEN or ``where``."""
        env = os.environ if environ is None else environ
        url = url or env.get("QSTASH_URL") or UPSTASH_URL
        secret = token.get_secret_value() if isinstance(token, SecretStr) else token
        secret = secret or env.get("QSTASH_TOKEN")
        if not secret:
            raise ConfigError(
                f"No QStash token: set QSTASH_TOKEN or {where} "
                "(for the local server, `migrator dev up --json` prints one)."
            )
        return cls(url=url.rstrip("/"), token=SecretStr(secret))

    @property
    def bearer(self) -> str:
        """The token, for the HTTP client's Authorization header only."""
        return self.token.get_secret_value()
