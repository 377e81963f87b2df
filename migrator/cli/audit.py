"""`migrator audit`: inventory a live Kafka estate and report what maps to QStash."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import cast
from urllib.parse import unquote, urlsplit, urlunsplit

import click
from pydantic import SecretStr, ValidationError

from migrator.audit.progress import NullProgress, Progress, TerminalProgress
from migrator.audit.report import render
from migrator.audit.runner import AuditOptions, run_audit
from migrator.cli.options import ServiceFlags, kafka_options, service_options
from migrator.config import BasicAuth, KafkaConnection, RestConnection
from migrator.errors import ConfigError
from migrator.qstash_tiers import TIERS, TierName
from migrator.yamlfile import write_atomic

__all__ = ["command", "report_format", "rest_connection", "service_connections", "write_atomically"]

_SEVERITY_RANK = {"blocker": 0, "warning": 1, "info": 2}


def rest_connection(
    url: str | None, user: str | None, password: str | None, *, flag: str, timeout: float
) -> RestConnection | None:
    """A REST connection; credentials in the URL (https://user:pass@host) move into basic auth."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{flag} {_strip_userinfo(url)!r}: expected an http:// or https:// URL.")
    if parts.username is not None:
        user = user or unquote(parts.username)
        password = password or unquote(parts.password or "")
        url = _strip_userinfo(url)
    if password and not user:
        raise ConfigError(f"{flag}: a password was given without a user; add the matching -user option.")
    auth = BasicAuth(username=user, password=SecretStr(password or "")) if user else None
    try:
        return RestConnection(url=url.rstrip("/"), auth=auth, timeout=timeout)
    except ValidationError as exc:
        raise ConfigError(f"{flag}: {exc.errors()[0]['msg']}") from None


def service_connections(
    services: ServiceFlags, timeout: float
) -> tuple[RestConnection | None, RestConnection | None]:
    """The Schema Registry and Kafka Connect connections the service options name (or None)."""
    return (
        rest_connection(services.schema_registry_url, services.schema_registry_user,
                        services.schema_registry_password, flag="--schema-registry-url",
                        timeout=timeout),
        rest_connection(services.connect_url, services.connect_user, services.connect_password,
                        flag="--connect-url", timeout=timeout),
    )


def _strip_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None:
        return url
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same directory and a rename."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ConfigError(f"-o {path}: the directory {directory} does not exist.")
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise ConfigError(f"-o {path}: cannot write the report ({exc.strerror}).") from None


_EXTENSIONS = {".json": "json", ".html": "html", ".htm": "html", ".md": "markdown",
               ".markdown": "markdown", ".txt": "table"}


def report_format(fmt: str | None, output: Path | None) -> str:
    """The report format: ``--format``, else the one ``-o``'s extension names, else table; a
    ``--format`` the extension contradicts (``-o report.json --format html``) is refused."""
    implied = _EXTENSIONS.get(output.suffix.lower()) if output is not None else None
    if fmt is None:
        return implied or "table"
    if implied is not None and implied != fmt:
        raise ConfigError(f"-o {output}: the extension means a {implied} report but --format {fmt} "
                          f"was given; drop --format or name the file for {fmt}.")
    return fmt


@click.command("audit")
@kafka_options
@service_options
@click.option("--include", multiple=True, metavar="GLOB",
              help="Only topics matching this glob (repeatable); groups, subjects and connectors "
                   "follow the topics.")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Leave out topics matching this glob.")
@click.option("--timeout", type=click.FloatRange(min=0.5), default=30.0, show_default=True,
              help="Seconds to wait for any one Kafka or REST call.")
@click.option("--sample-seconds", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Measure records/s per topic over this window (0: skip).")
@click.option("--sample-records", type=click.IntRange(min=0), default=100, show_default=True,
              help="Newest records to read per topic, by assignment (0: skip).")
@click.option("--qstash-plan", type=click.Choice(list(TIERS)), default="payg",
              show_default=True, help="QStash plan whose limits the findings use.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown", "html"]),
              help="Report format  [default: from the -o file's extension (.json, .html, .md, "
                   ".txt), else table]")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write the report here (atomically) instead of stdout.")
@click.option("--fail-on", type=click.Choice(["blocker", "warning"]),
              help="Exit 1 when findings of this severity (or worse) exist.")
@click.pass_context
def command(
    ctx: click.Context,
    bootstrap_servers: str | None,
    kafka_config: str | None,
    x_options: tuple[str, ...],
    services: ServiceFlags,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    timeout: float,
    sample_seconds: float,
    sample_records: int,
    qstash_plan: str,
    fmt: str | None,
    output: Path | None,
    fail_on: str | None,
) -> None:
    """Inventory a live Kafka estate and report what maps to QStash.

    Reads only: it never joins a consumer group, commits an offset or changes anything.
    Exit codes: 0 done, 1 findings at or above --fail-on, 2 usage error, 3 bad configuration,
    4 Kafka unreachable, 5 Kafka refused the credentials.
    """
    fmt = report_format(fmt, output)
    if output is not None and not (output.parent if str(output.parent) else Path(".")).is_dir():
        raise ConfigError(f"-o {output}: the directory {output.parent} does not exist.")
    kafka = KafkaConnection.build(
        bootstrap_servers=bootstrap_servers, properties_file=kafka_config, x_options=x_options
    )
    registry, connect = service_connections(services, timeout)
    options = AuditOptions(
        kafka=kafka,
        schema_registry=registry,
        connect=connect,
        include=include,
        exclude=exclude,
        timeout=timeout,
        sample_seconds=sample_seconds,
        sample_records=sample_records,
        qstash_tier=cast(TierName, qstash_plan),
    )
    progress: Progress = TerminalProgress(sys.stderr) if sys.stderr.isatty() else NullProgress()
    inventory = run_audit(options, progress)
    text = render(inventory, fmt)
    if output is None:
        click.echo(text, nl=False)
    else:
        write_atomically(output, text)
        click.echo(f"Wrote the {fmt} report to {output} "
                   f"({len(inventory.findings)} finding(s)).", err=True)
    if fail_on is not None:
        worst = _SEVERITY_RANK[fail_on]
        if any(_SEVERITY_RANK[f.severity] <= worst for f in inventory.findings):
            ctx.exit(1)
