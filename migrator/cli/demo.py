"""`migrator demo`: the main job end to end on the local stack."""

from __future__ import annotations

from pathlib import Path

import click

from migrator import stack
from migrator.demo import run_demo, summary
from migrator.errors import DeliveryError

__all__ = ["command"]


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
    verdict = [line for line in result.second_apply.splitlines() if line.startswith("Nothing to do")]
    click.echo(f"Second apply: {verdict[0] if verdict else result.second_apply or '(no output)'}")
    click.echo(f"Reports: {result.workdir}/audit.html, {result.workdir}/plan/ (plan.yaml, RUNBOOK.md, bridge.yaml)")
    click.echo("Stop the stack with `migrator dev down`.")
    if not result.ok:
        raise DeliveryError("The demo did not deliver every record exactly once; see the table above.")
