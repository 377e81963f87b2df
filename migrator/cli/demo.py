"""`migrator demo`: the main job end to end on the local stack."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

import click

from migrator import stack
from migrator.demo import run_demo, summary
from migrator.errors import DeliveryError

__all__ = ["closing_lines", "command", "command_name"]


def command_name(argv0: str | None = None, cwd: Path | None = None) -> str:
    """How to run this `migrator` from the current folder: ``migrator`` when that name on the
    PATH is this program, else its path (``.venv/bin/migrator`` after ``make demo``)."""
    argv0 = argv0 if argv0 is not None else sys.argv[0]
    here = cwd or Path.cwd()
    program = Path(argv0)
    if program.name != "migrator" or not program.exists():  # python -m migrator
        return f"{shlex.quote(sys.executable)} -m migrator"
    on_path = shutil.which("migrator")
    if on_path is not None and Path(on_path).resolve() == program.resolve():
        return "migrator"
    try:
        relative = os.path.relpath(program.resolve(), here.resolve())
    except ValueError:
        relative = str(program.resolve())
    if relative.startswith(".."):
        return shlex.quote(str(program.resolve()))
    return shlex.quote(relative if "/" in relative else f"./{relative}")


def closing_lines(migrator: str, workdir: Path, cwd: Path | None = None) -> list[str]:
    """What to run next, as it works from this folder (``workdir`` relative to it when inside)."""
    here = (cwd or Path.cwd()).resolve()
    if workdir.is_absolute() and workdir.resolve().is_relative_to(here):
        workdir = workdir.resolve().relative_to(here)
    return [
        f"Reports: {workdir}/audit.html, {workdir}/plan/ (plan.md, plan.yaml, RUNBOOK.md, "
        "bridge.yaml, scaffold/)",
        "Next, from this folder:",
        f'  eval "$({migrator} dev env)"   # point this shell at the local stack (QStash token, Kafka)',
        f"  {migrator} bridge check --config {workdir}/plan/bridge.yaml",
        f"  {migrator} dev down   # stop the local stack",
    ]


@click.command()
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=Path("migrator-demo"),
              show_default=True, help="Where the inventory, reports, plan and logs are written.")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The local stack's directory (default: as `migrator dev up`).")
@click.option("--timeout", type=float, default=180.0, show_default=True,
              help="Seconds the bridge may take to deliver every record.")
def command(workdir: Path, run_dir: Path | None, timeout: float) -> None:
    """Start the local stack and run audit, plan, apply, bridge and the cutover of every
    consumer group (one rollback) on a sample estate."""
    directory = (run_dir or stack.default_run_dir()).resolve()

    def progress(message: str) -> None:
        click.echo(f"… {message}", err=True)

    info, reused = stack.up(directory, progress=progress)
    progress(f"{'reusing the running' if reused else 'started the'} stack in {directory}")
    result = run_demo(info, workdir.resolve(), progress, timeout=timeout)
    click.echo(summary(result))
    click.echo("")
    for line in closing_lines(command_name(), result.workdir):
        click.echo(line)
    if not result.ok:
        raise DeliveryError("The demo did not deliver every record exactly once; see the table above.")
