"""The `migrator` command line. Errors become exit codes here and nowhere else.

Each command lives in its own module ``migrator.cli.<name>`` exposing a click object named
``command``; the root group loads it on first use, so ``migrator --help`` stays fast and a
broken optional dependency of one command never breaks the others.

Exit codes (documented in docs/exit-codes.md):

    0  success
    1  audit findings at or above --fail-on, bridge check problems
    2  usage error (unknown option, missing argument)
    3  configuration error (bad file, bad value)
    4  Kafka unreachable
    5  Kafka refused our credentials
    6  plan cannot be applied (conflict, placeholders, destructive change)
    7  a REST service failed (QStash, Schema Registry, Kafka Connect)
    8  local stack error (missing Java/Maven, a server failed to start)
    9  delivery failed
    10 cutover step not allowed in the group's current state
    11 cutover fence not reached: the old consumers did not stop in time
    12 cutover refused: a consumer group to alter still has members
    13 cutover refused: no bridge runs with this config to take the group over
    14 cutover refused: another cutover command holds the group's lease
    15 the settings need an optional extra that is not installed
    16 cutover stopped: this command lost the group's lease mid-step (a rerun resumes)
    70 internal error (a bug: please report it, run with --debug for the traceback)
    130 interrupted
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from typing import Any

import click

from migrator import __version__
from migrator.errors import (
    BridgeNotRunningError,
    ConfigError,
    DeliveryError,
    ExtraNotInstalledError,
    FenceTimeoutError,
    GroupNotEmptyError,
    IllegalTransitionError,
    KafkaAuthError,
    KafkaUnavailableError,
    LeaseHeldError,
    LeaseLostError,
    MigratorError,
    PlanError,
    ServiceError,
    StackError,
)

__all__ = ["EXIT_CODES", "cli", "exit_code_for", "main"]

EXIT_CODES: dict[type[MigratorError], int] = {
    ConfigError: 3,
    KafkaUnavailableError: 4,
    KafkaAuthError: 5,
    PlanError: 6,
    ServiceError: 7,
    StackError: 8,
    DeliveryError: 9,
    IllegalTransitionError: 10,
    FenceTimeoutError: 11,
    GroupNotEmptyError: 12,
    BridgeNotRunningError: 13,
    LeaseHeldError: 14,
    ExtraNotInstalledError: 15,
    LeaseLostError: 16,
}
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

_COMMANDS = ("dev", "audit", "plan", "apply", "bridge", "cutover", "demo", "doctor")


def exit_code_for(error: MigratorError) -> int:
    """The exit code for a toolkit error: the code of its nearest class in EXIT_CODES."""
    for klass in type(error).__mro__:
        if klass in EXIT_CODES:
            return EXIT_CODES[klass]
    return EXIT_INTERNAL


class _LazyGroup(click.Group):
    """Loads ``migrator.cli.<name>.command`` on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        found = [n for n in _COMMANDS if importlib.util.find_spec(f"migrator.cli.{n}")]
        return sorted(set(found) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in _COMMANDS or not importlib.util.find_spec(f"migrator.cli.{cmd_name}"):
            return None
        module = importlib.import_module(f"migrator.cli.{cmd_name}")
        command: click.Command = module.command
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="migrator")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("-v", "--verbose", count=True, help="More log output (repeatable).")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: int) -> None:
    """Move Kafka workloads onto Upstash QStash: audit, plan, apply, bridge."""
    level = logging.DEBUG if debug or verbose > 1 else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the console script: runs the CLI and maps errors to exit codes."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        rc = cli.main(args=argv, prog_name="migrator", standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code if exc.exit_code != 1 else EXIT_USAGE)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except MigratorError as exc:
        if debug:
            raise
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exit_code_for(exc))
    except Exception as exc:  # a bug, not a user's mistake
        if debug:
            raise
        click.echo(
            f"Internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)
    sys.exit(0)
