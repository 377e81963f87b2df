"""`migrator dev`: the local stack (Kafka, Apicurio Registry, Kafka Connect, QStash) on 127.0.0.1."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click

from migrator import stack
from migrator.errors import ConfigError, StackError

__all__ = ["command"]

_run_dir_option = click.option(
    "--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where the stack keeps state, data and logs (default: $MIGRATOR_DEV_DIR or "
         "~/.local/state/migrator/dev).",
)


def _run_dir(value: Path | None) -> Path:
    return (value or stack.default_run_dir()).resolve()


@click.group()
def command() -> None:
    """Run the local stack the tests and the demo use."""


@command.command()
@_run_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object describing the stack.")
@click.option("--engine", type=click.Choice(["jars", "testcontainers"]), default="jars",
              show_default=True, help="jars: Maven Central jars on this machine; testcontainers: "
              "containers on a Docker engine.")
@click.option("--timeout", type=float, default=180.0, show_default=True,
              help="Seconds to wait for each server to become ready.")
@click.option("--qstash-backoff-scale", type=float, default=1.0, show_default=True,
              help="Scale the local QStash server's retry backoff (e.g. 0.01 for tests).")
def up(run_dir: Path | None, as_json: bool, engine: str, timeout: float,
       qstash_backoff_scale: float) -> None:
    """Start the stack (or reuse the running one) and describe it."""
    directory = _run_dir(run_dir)
    if engine == "testcontainers":
        from migrator.stack.containers import up_containers

        info, reused = up_containers(directory, timeout=timeout)
    else:
        tty = sys.stderr.isatty()
        info, reused = stack.up(
            directory, timeout=timeout, qstash_backoff_scale=qstash_backoff_scale,
            progress=(lambda m: click.echo(f"… {m}", err=True)) if tty or not as_json else
            (lambda _m: None),
        )
    if reused:
        click.echo(f"The stack in {directory} is already running; reusing it.", err=True)
    if as_json:
        click.echo(json.dumps(info.public(), indent=2))
        return
    _show(info)


def _show(info: stack.StackInfo) -> None:
    rows = [
        ("Kafka (PLAINTEXT)", info.bootstrap_servers),
        ("Kafka (SASL_PLAINTEXT, SCRAM-SHA-256)", info.sasl_bootstrap_servers),
        ("Kafka (SSL, server certificate)", f"{info.ssl_bootstrap_servers} (CA: {info.ssl_ca_file})"),
        *([(f"Kafka (SASL_SSL, {', '.join(info.sasl_ssl_mechanisms)})",
            info.sasl_ssl_bootstrap_servers)] if info.sasl_ssl_bootstrap_servers else []),
        *([("Kafka (SSL, client certificate required)",
            f"{info.mtls_bootstrap_servers} (client: {info.ssl_client_certificate_file}, "
            f"{info.ssl_client_key_file})")] if info.mtls_bootstrap_servers else []),
        *([("Kafka (SASL_SSL, OAUTHBEARER)",
            f"{info.oauth_bootstrap_servers} (tokens: {info.oidc_token_endpoint_url}, client "
            f"{info.oidc_client_id})")] if info.oauth_bootstrap_servers else []),
        ("SASL user", f"{info.sasl_username} (password in {info.run_dir}/stack.json)"),
        ("Schema Registry (Confluent API)", info.schema_registry_url),
        ("Kafka Connect", info.connect_url),
        ("QStash (local)", info.qstash_url or "not available"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")
    click.echo(f"{'State file':<{width}}  {info.run_dir}/stack.json (`migrator dev up --json`)")


@command.command()
@_run_dir_option
def down(run_dir: Path | None) -> None:
    """Stop the stack and remove its data."""
    directory = _run_dir(run_dir)
    if stack.down(directory):
        click.echo(f"Stopped the stack in {directory} and removed its data.")
    else:
        click.echo(f"No stack is running in {directory}.")


@command.command()
@_run_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the stack's JSON if it is up.")
def status(run_dir: Path | None, as_json: bool) -> None:
    """Show whether each server runs and answers. Exit 1 when something is down."""
    directory = _run_dir(run_dir)
    servers = stack.status(directory)
    if not servers:
        click.echo(f"No stack is running in {directory}. Start one with `migrator dev up`.")
        raise click.exceptions.Exit(1)
    info = stack.load_state(directory)
    if as_json and info is not None:
        click.echo(json.dumps(info.public(), indent=2))
    else:
        for s in servers:
            state = "ready" if s.ready else "running, not answering" if s.alive else "stopped"
            click.echo(f"{s.name:<10} pid {s.pid:<8} {state}")
    if not all(s.ready for s in servers):
        raise click.exceptions.Exit(1)


@command.command()
@_run_dir_option
@click.argument("server", required=False)
@click.option("-n", "--lines", type=int, default=40, show_default=True)
def logs(run_dir: Path | None, server: str | None, lines: int) -> None:
    """Show the tail of each server's log (or of SERVER: kafka, registry, connect, qstash)."""
    if lines < 1:
        raise ConfigError("--lines must be at least 1.")
    for name, text in stack.logs(_run_dir(run_dir), server, lines).items():
        click.echo(f"==> {name} <==")
        click.echo(text)


@command.command()
@_run_dir_option
def env(run_dir: Path | None) -> None:
    """Print shell exports pointing the other commands (and the tests) at the running stack.

    Use as: eval "$(migrator dev env)"
    """
    directory = _run_dir(run_dir)
    info = stack.load_state(directory)
    if info is None:
        raise ConfigError(f"No stack is running in {directory}; start one with `migrator dev up`.")
    from migrator.stack.state import env_vars

    for name, value in env_vars(info).items():
        click.echo(f"export {name}={shlex.quote(value)}")


@command.command()
@_run_dir_option
@click.option("--prefix", default="shop", show_default=True, help="Name prefix of the sample topics and groups.")
def seed(run_dir: Path | None, prefix: str) -> None:
    """Create a small sample estate on the running stack (topics, records, groups, schema, connector)."""
    from migrator.stack.sample import seed_sample_estate

    directory = _run_dir(run_dir)
    info = stack.load_state(directory)
    if info is None:
        raise ConfigError(f"No stack is running in {directory}; start one with `migrator dev up`.")
    estate = seed_sample_estate(info, prefix)
    for topic, partitions in estate.topics.items():
        click.echo(f"topic     {topic} ({partitions} partitions)")
    for group, topics in estate.groups.items():
        click.echo(f"group     {group} -> {', '.join(topics)}")
    if estate.connector:
        click.echo(f"connector {estate.connector}")


def _register_qstash() -> None:
    """Mount the local QStash server's command (package ``qstash_server``, the ``server`` extra).

    Its configuration errors (``ServerConfigError``) become the toolkit's ``ConfigError`` (exit 3)
    here, at the CLI edge; a missing extra is one line and exit 8.
    """
    try:
        from qstash_server import missing_dependencies
        from qstash_server.cli import qstash_command
        from qstash_server.errors import ServerConfigError
    except ImportError:  # the server package is not installed at all
        return
    server_callback = qstash_command.callback
    assert server_callback is not None

    def run(**options: object) -> None:
        problem = missing_dependencies()
        if problem is not None:
            raise StackError(problem)
        try:
            server_callback(**options)
        except ServerConfigError as exc:
            raise ConfigError(str(exc)) from None

    command.add_command(click.Command("qstash", params=qstash_command.params, callback=run,
                                      help=qstash_command.help))


_register_qstash()
