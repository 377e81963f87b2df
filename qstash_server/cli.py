"""``migrator dev qstash`` / ``python -m qstash_server``: run the local QStash server."""

from __future__ import annotations

import sys

import click
from pydantic import SecretStr, ValidationError

from migrator.qstash_tiers import TIERS
from qstash_server.errors import ServerConfigError
from qstash_server.settings import (
    ServerSettings,
    generate_signing_key,
    generate_token,
)

__all__ = ["build_settings", "qstash_command"]


def _statuses(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise ServerConfigError(
            f"--fault-statuses {value!r} is not a comma-separated list of HTTP statuses; "
            "use e.g. 429,503"
        ) from None


def build_settings(**options: object) -> tuple[ServerSettings, list[str]]:
    """Validate CLI options; returns the settings and the names of generated secrets."""
    generated: list[str] = []
    values = {k: v for k, v in options.items() if v is not None}
    if "token" not in values:
        values["token"] = generate_token()
        generated.append("token")
    for name in ("current_signing_key", "next_signing_key"):
        if name not in values:
            values[name] = generate_signing_key()
            generated.append(name)
    for name in ("token", "current_signing_key", "next_signing_key"):
        values[name] = SecretStr(str(values[name]))
    if isinstance(values.get("fault_statuses"), str):
        values["fault_statuses"] = _statuses(str(values["fault_statuses"]))
    try:
        return ServerSettings(**values), generated
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ServerConfigError(f"invalid QStash server option: {problems}") from None


@click.command("qstash")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port (0 = any free port).")
@click.option("--db", default=":memory:", show_default=True,
              help="SQLite file for state that survives restarts, or :memory:.")
@click.option("--token", default=None, help="API token clients must send (generated if absent).")
@click.option("--current-signing-key", default=None, help="Signing key (generated if absent).")
@click.option("--next-signing-key", default=None, help="Next signing key (generated if absent).")
@click.option("--backoff-scale", default=1.0, show_default=True, type=float,
              help="Multiply every retry delay by this (e.g. 0.01 in tests).")
@click.option("--accept-only", is_flag=True, help="Accept and store messages but never deliver.")
@click.option("--plan", default="payg", show_default=True, type=click.Choice(sorted(TIERS)),
              help="Plan whose limits apply.")
@click.option("--fault-rate", default=0.0, show_default=True, type=float,
              help="Test only: fraction of publish/enqueue/batch calls refused.")
@click.option("--fault-statuses", default="429,503", show_default=True,
              help="Test only: statuses used for refused calls.")
@click.option("--cancel-delay-ms", default=0, show_default=True, type=int,
              envvar="QSTASH_SERVER_CANCEL_DELAY_MS",
              help="Test only: a filter-based bulk cancel answers at once (CANCEL_REQUESTED) "
                   "and takes effect this many ms later, as QStash's background bulk action "
                   "does; 0 cancels synchronously. Env: QSTASH_SERVER_CANCEL_DELAY_MS.")
def qstash_command(**options: object) -> None:
    """Run a local QStash-compatible server in the foreground until interrupted."""
    from qstash_server.server import serve

    settings, generated = build_settings(**options)
    secrets = {
        "token": settings.token,
        "current_signing_key": settings.current_signing_key,
        "next_signing_key": settings.next_signing_key,
    }
    def ready(url: str) -> None:
        # generated credentials are shown once the server listens (stderr; stdout is READY)
        for name in generated:
            click.echo(f"{name.upper().replace('_', '-')}: {secrets[name].get_secret_value()}",
                       err=True)
        click.echo(f"READY {url}")
        sys.stdout.flush()

    serve(settings, ready)
