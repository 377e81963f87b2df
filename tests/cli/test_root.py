"""The root command: version, help on every command, and errors mapped to exit codes."""

from __future__ import annotations

import subprocess

import click
import pytest

from migrator import errors
from migrator.cli import EXIT_CODES, cli, exit_code_for
from tests.fixtures.cli import migrator


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return migrator(*args, drop_qstash_env=False)  # in-process: nothing here needs a process


def test_version_and_help() -> None:
    assert run("--version").stdout.startswith("migrator, version ")
    out = run("--help")
    assert out.returncode == 0 and "dev" in out.stdout


def _all_commands(group: click.Group, ctx: click.Context, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name in group.list_commands(ctx):
        sub = group.get_command(ctx, name)
        assert sub is not None
        found.append((*prefix, name))
        if isinstance(sub, click.Group):
            found += _all_commands(sub, ctx, (*prefix, name))
    return found


def test_every_command_has_help() -> None:
    ctx = click.Context(cli)
    commands = _all_commands(cli, ctx)
    assert ("dev", "up") in commands
    for path in commands:
        out = run(*path, "--help")
        assert out.returncode == 0, (path, out.stderr)
        assert "Usage:" in out.stdout


def test_usage_errors_exit_2_without_traceback() -> None:
    out = run("dev", "logs", "--lines", "many")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert run("no-such-command").returncode == 2


def test_every_error_class_has_a_distinct_code() -> None:
    codes = list(EXIT_CODES.values())
    assert len(codes) == len(set(codes))
    assert 0 not in codes and 1 not in codes and 2 not in codes
    assert exit_code_for(errors.ConflictingPlanError("x")) == EXIT_CODES[errors.PlanError]
    assert exit_code_for(errors.RetryableDeliveryError("x")) == EXIT_CODES[errors.DeliveryError]


@pytest.mark.parametrize("module", ["migrator.errors", "migrator.config", "migrator.inventory", "migrator.stack"])
def test_public_names_exist_once(module: str) -> None:
    mod = __import__(module, fromlist=["__all__"])
    names = list(mod.__all__)
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(mod, name), name
