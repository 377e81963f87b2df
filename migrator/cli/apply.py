"""`migrator apply PLAN [--dry-run] [--prune --allow-destructive]`."""

from __future__ import annotations

from pathlib import Path

import click

from migrator.config import QStashConnection
from migrator.errors import PlanError, ServiceError, UnfilledPlaceholderError
from migrator.plan.admin import QStashAdmin
from migrator.plan.apply import apply_actions
from migrator.plan.diff import check_conflicts, diff
from migrator.plan.explain import explain
from migrator.plan.spec import Plan, load_plan
from migrator.plan.state import read_state
from migrator.yamlfile import write_atomic

__all__ = ["command"]


@click.command()
@click.argument("plan_file", metavar="PLAN", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Print the action list; change nothing.")
@click.option("--prune", is_flag=True, help="Also delete live resources the plan does not have.")
@click.option("--allow-destructive", is_flag=True, help="Required with --prune to delete.")
@click.option("--qstash-url", help="QStash base URL (or QSTASH_URL).")
@click.option("--qstash-token", help="QStash token (or QSTASH_TOKEN).")
def command(plan_file: Path, dry_run: bool, prune: bool, allow_destructive: bool,
            qstash_url: str | None, qstash_token: str | None) -> None:
    """Make QStash match PLAN: read live state, print the actions, carry them out."""
    plan = load_plan(plan_file)
    holes = plan.placeholders()
    if holes:
        raise UnfilledPlaceholderError(
            f"{plan_file}: {len(holes)} placeholder(s) to fill before apply:\n"
            + "".join(f"  {hole}\n" for hole in holes)
            + "Map them in the endpoint file and re-run `migrator plan`.")
    over = [b for b in plan.blockers if b.code == "PLAN_LIMIT" and b.severity == "blocker"]
    if over:
        raise PlanError(
            f"{plan_file}: the plan does not fit the {plan.qstash_plan} QStash plan: "
            f"{'; '.join(f'{b.object}: {b.message}' for b in over)}. QStash would refuse these "
            "midway; re-run `migrator plan` with a larger --qstash-plan or fewer routes.")
    conn = QStashConnection.from_env(qstash_url, qstash_token)
    with QStashAdmin(conn) as admin:
        _apply(admin, plan, plan_file, conn, prune=prune, allow_destructive=allow_destructive,
               dry_run=dry_run)


def _apply(admin: QStashAdmin, plan: Plan, plan_file: Path, conn: QStashConnection, *,
           prune: bool, allow_destructive: bool, dry_run: bool) -> None:
    live = read_state(admin)
    if plan.reviewed_state is None:
        click.echo("Note: the plan was made offline; changes made in QStash since then cannot be "
                   "detected (run `migrator plan` with QSTASH_TOKEN set to record them).", err=True)
    elif plan.reviewed_state.url != conn.url:
        click.echo(f"Note: the plan was reviewed against {plan.reviewed_state.url}, this is "
                   f"{conn.url}.", err=True)
    check_conflicts(plan, live, prune=prune)
    result = diff(plan, live, prune=prune, allow_destructive=allow_destructive)
    for b in plan.blockers:
        click.echo(f"{b.severity}: {b.object}: {b.message}", err=True)
    click.echo(f"QStash at {conn.url}; plan {plan_file}:")
    for line in explain(result):
        click.echo(line)
    if dry_run:
        click.echo("Dry run: nothing changed.")
        return
    if not result.changes:
        return
    report = apply_actions(admin, result.actions)
    for line in report.lines():
        click.echo(line)
    report_file = plan_file.with_name(plan_file.stem + ".apply-report.json")
    try:
        write_atomic(report_file, report.to_json())
        where = f"report in {report_file}"
    except OSError as exc:
        where = f"the report could not be written to {report_file}: {exc.strerror}"
        click.echo(f"Warning: {where}.", err=True)
    if report.interrupted:
        click.echo(f"Interrupted: {report.count('applied')} applied, "
                   f"{report.count('not applied')} not applied ({where}). Re-run "
                   f"`migrator apply {plan_file}` to finish the job.", err=True)
        raise KeyboardInterrupt
    failed = report.failed
    if failed is not None:
        raise ServiceError(
            f"apply stopped at {failed.kind} {failed.resource}: {failed.error} "
            f"({report.count('applied')} applied, {report.count('not applied')} not applied; "
            f"{where}). Fix the cause and re-run `migrator apply {plan_file}`: "
            "it finishes the job.")
