"""What a running local stack is: ports, credentials, processes. Persisted as a JSON state file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from migrator.errors import StackError

__all__ = ["ProcessInfo", "StackInfo", "default_run_dir", "load_state", "save_state"]

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
