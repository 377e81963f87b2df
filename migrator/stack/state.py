"""What a running local stack is: ports, credentials, processes. Persisted as a JSON state file."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from migrator.config import QStashConnection
from migrator.errors import StackError

__all__ = ["ProcessInfo", "StackInfo", "default_run_dir", "env_vars", "load_state", "save_state",
           "stack_env"]

STATE_FILE = "stack.json"


class ProcessInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    pid: int
    log: str


class StackInfo(BaseModel):
    """Everything a client needs to use the stack; `migrator dev up --json` prints this."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    engine: str = "jars"
    bootstrap_servers: str
    sasl_bootstrap_servers: str
    sasl_mechanism: str = "SCRAM-SHA-256"
    sasl_username: str
    sasl_password: str
    ssl_bootstrap_servers: str | None = Field(default=None, description="SSL listener (server auth only).")
    ssl_ca_file: str | None = Field(default=None, description="PEM CA certificate that signed the broker's.")
    sasl_ssl_bootstrap_servers: str | None = Field(
        default=None, description="SASL_SSL listener (TLS with ssl_ca_file, then SASL as sasl_username).")
    sasl_ssl_mechanisms: list[str] = Field(
        default_factory=list, description="Mechanisms the SASL_SSL listener accepts.")
    mtls_bootstrap_servers: str | None = Field(
        default=None, description="SSL listener requiring a client certificate (mTLS).")
    ssl_client_certificate_file: str | None = Field(
        default=None, description="A client certificate the mTLS listener accepts (PEM).")
    ssl_client_key_file: str | None = Field(default=None, description="Its private key (PEM).")
    oauth_bootstrap_servers: str | None = Field(
        default=None, description="SASL_SSL listener taking OAUTHBEARER tokens of the OIDC issuer.")
    oidc_token_endpoint_url: str | None = Field(
        default=None, description="The local OIDC issuer's client-credentials token endpoint.")
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    schema_registry_url: str
    connect_url: str
    qstash_url: str | None = None
    qstash_token: str | None = None
    qstash_current_signing_key: str | None = None
    qstash_next_signing_key: str | None = None
    cluster_id: str
    run_dir: str
    lib_dir: str = Field(description="The Kafka jars, for running Kafka's own CLI tools.")
    processes: list[ProcessInfo] = Field(default_factory=list)

    @property
    def qstash(self) -> QStashConnection | None:
        """The local QStash server's endpoint (``None``: the stack has none)."""
        if self.qstash_url is None or self.qstash_token is None:
            return None
        return QStashConnection(url=self.qstash_url, token=SecretStr(self.qstash_token))

    def public(self) -> dict[str, object]:
        """The JSON object printed by `dev up --json` (local-only credentials included on purpose)."""
        return self.model_dump(mode="json")


def default_run_dir() -> Path:
    """Where the stack keeps its state, data and logs: $MIGRATOR_DEV_DIR or the XDG state dir."""
    if os.environ.get("MIGRATOR_DEV_DIR"):
        return Path(os.environ["MIGRATOR_DEV_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "migrator" / "dev"


def save_state(info: StackInfo) -> Path:
    path = Path(info.run_dir) / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info.public(), indent=2), encoding="utf-8")
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


def load_state(run_dir: Path) -> StackInfo | None:
    path = run_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        return StackInfo.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise StackError(
            f"{path}: the stack state file is unreadable ({exc.__class__.__name__}); "
            f"run `migrator dev down` to clean up."
        ) from None


def env_vars(info: StackInfo) -> dict[str, str]:
    """The documented environment variables pointing clients at ``info``'s stack (what
    `migrator dev env` exports); values the stack does not have are left out."""
    values = {
        "KAFKA_BOOTSTRAP_SERVERS": info.bootstrap_servers,
        "KAFKA_SASL_BOOTSTRAP_SERVERS": info.sasl_bootstrap_servers,
        "KAFKA_SASL_USERNAME": info.sasl_username,
        "KAFKA_SASL_PASSWORD": info.sasl_password,
        "KAFKA_SSL_BOOTSTRAP_SERVERS": info.ssl_bootstrap_servers,
        "KAFKA_SSL_CA_FILE": info.ssl_ca_file,
        "KAFKA_SASL_SSL_BOOTSTRAP_SERVERS": info.sasl_ssl_bootstrap_servers,
        "KAFKA_MTLS_BOOTSTRAP_SERVERS": info.mtls_bootstrap_servers,
        "KAFKA_SSL_CLIENT_CERT_FILE": info.ssl_client_certificate_file,
        "KAFKA_SSL_CLIENT_KEY_FILE": info.ssl_client_key_file,
        "KAFKA_OAUTH_BOOTSTRAP_SERVERS": info.oauth_bootstrap_servers,
        "KAFKA_OIDC_TOKEN_ENDPOINT_URL": info.oidc_token_endpoint_url,
        "KAFKA_OIDC_CLIENT_ID": info.oidc_client_id,
        "KAFKA_OIDC_CLIENT_SECRET": info.oidc_client_secret,
        "SCHEMA_REGISTRY_URL": info.schema_registry_url,
        "KAFKA_CONNECT_URL": info.connect_url,
        "KAFKA_LIB_DIR": info.lib_dir,
        "QSTASH_URL": info.qstash_url,
        "QSTASH_TOKEN": info.qstash_token,
        "QSTASH_CURRENT_SIGNING_KEY": info.qstash_current_signing_key,
        "QSTASH_NEXT_SIGNING_KEY": info.qstash_next_signing_key,
    }
    return {name: value for name, value in values.items() if value}


def stack_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The stack's settings for a client such as a benchmark: the documented environment
    variables where set, else the running stack's own state (``default_run_dir()``)."""
    env = os.environ if environ is None else environ
    info = load_state(default_run_dir())
    found = env_vars(info) if info is not None else {}
    return {**found, **{name: env[name] for name in _VARIABLES if env.get(name)}}


_VARIABLES = ("KAFKA_BOOTSTRAP_SERVERS", "KAFKA_SASL_BOOTSTRAP_SERVERS", "KAFKA_SASL_USERNAME",
              "KAFKA_SASL_PASSWORD", "KAFKA_SSL_BOOTSTRAP_SERVERS", "KAFKA_SSL_CA_FILE",
              "SCHEMA_REGISTRY_URL", "KAFKA_CONNECT_URL", "KAFKA_LIB_DIR", "QSTASH_URL",
              "QSTASH_TOKEN", "QSTASH_CURRENT_SIGNING_KEY", "QSTASH_NEXT_SIGNING_KEY")
