"""`migrator plan INVENTORY.json -o DIR` and `migrator plan schema`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from migrator.config import QStashConnection
from migrator.errors import ConfigError, ServiceError
from migrator.inventory import Inventory
from migrator.plan.admin import QStashAdmin
from migrator.plan.builder import PlanOptions, build_plan
from migrator.plan.cost import PriceTable, load_prices
from migrator.plan.endpoints import EndpointMap, load_endpoints
from migrator.plan.output import build_output
from migrator.plan.spec import Plan, ReviewedState
from migrator.plan.state import read_state, reviewed
from migrator.qstash_tiers import TIERS, TierName
from migrator.yamlfile import load_model

__all__ = ["command", "load_inventory"]


class _PlanGroup(click.Group):
    """`plan schema` is a subcommand; anything else is the main form, `plan INVENTORY.json ...`
    (also accepted as `plan build INVENTORY.json ...`). `plan --help` documents the main form."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["build", *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "INVENTORY.json -o DIR [OPTIONS]")
        formatter.write_usage(ctx.command_path, "schema", prefix="       ")

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help_text(ctx, formatter)
        main = self.commands["build"]
        main.format_help_text(click.Context(main, info_name=ctx.info_name, parent=ctx.parent),
                              formatter)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        main = self.commands["build"]
        main.format_options(click.Context(main, info_name=ctx.info_name, parent=ctx.parent),
                            formatter)
        self.format_commands(ctx, formatter)


@click.group(cls=_PlanGroup, no_args_is_help=True)
def command() -> None:
    """Turn an inventory into a reviewed QStash plan, or print the plan file's JSON Schema.

    \b
      migrator plan inventory.json --endpoints endpoints.yaml -o plan/
      migrator plan schema
    """


@command.command("schema")
def schema() -> None:
    """Print the JSON Schema of the plan file."""
    click.echo(json.dumps(Plan.model_json_schema(), indent=2))


@command.command("build", hidden=True)
@click.argument("inventory", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--endpoints", "endpoints_file", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML mapping consumer groups (globs) to endpoint URLs.")
@click.option("--qstash-plan", type=click.Choice(list(TIERS)),
              help="QStash plan to fit against (default: the inventory's).")
@click.option("-o", "--output", "output", required=True,
              type=click.Path(file_okay=False, path_type=Path), help="Output directory.")
@click.option("--format", "fmt", type=click.Choice(["markdown", "html"]), default="markdown",
              show_default=True, help="Format of the plan review.")
@click.option("--prefix", default="", help="Prefix of QStash resource names (prune scope).")
@click.option("--prices", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML price table for the cost estimate.")
@click.option("--headroom", type=click.FloatRange(min=1.0), default=2.0, show_default=True,
              help="Flow-control rate = observed records/s x headroom.")
@click.option("--bridge-group", default="migrator-bridge", show_default=True,
              help="Consumer group of the bridge in the generated bridge.yaml.")
@click.option("--qstash-url", help="QStash URL to review live state against (or QSTASH_URL).")
@click.option("--qstash-token", help="QStash token (or QSTASH_TOKEN).")
@click.option("--offline", is_flag=True, help="Do not read live QStash state.")
def build(inventory: Path, endpoints_file: Path | None, qstash_plan: TierName | None,
          output: Path, fmt: Any, prefix: str, prices: Path | None, headroom: float,
          bridge_group: str, qstash_url: str | None, qstash_token: str | None,
          offline: bool) -> None:
    """Plan the move of INVENTORY.json (from `migrator audit --format json`) onto QStash."""
    inv = load_inventory(inventory)
    groups = [g.group_id for g in inv.consumer_groups]
    connectors = [c.name for c in inv.connect.connectors if c.kind == "source"]
    endpoints = (load_endpoints(endpoints_file, groups=groups, connectors=connectors)
                 if endpoints_file else EndpointMap.empty())
    opts = PlanOptions(qstash_tier=qstash_plan or inv.qstash_plan, prefix=prefix,
                       headroom=headroom, prices=load_prices(prices) if prices else PriceTable(),
                       inventory_path=str(inventory))
    state = None if offline else _review_state(qstash_url, qstash_token, prefix)
    plan = build_plan(inv, endpoints, opts, state)
    out = build_output(plan, inv, fmt=fmt, inventory_file=str(inventory),
                       endpoints_file=str(endpoints_file) if endpoints_file else None,
                       bridge_group=bridge_group)
    out.write(output)
    counts: dict[str, int] = {}
    for route in plan.routes:
        counts[route.pattern] = counts.get(route.pattern, 0) + 1
    blockers = sum(1 for b in plan.blockers if b.severity == "blocker")
    click.echo(f"Wrote {len(out.files)} files to {output}/: plan.yaml, "
               f"{'plan.md' if fmt == 'markdown' else 'plan.html'}, RUNBOOK.md"
               f"{', bridge.yaml' if 'bridge.yaml' in out.files else ''}, scaffold/")
    click.echo(f"{len(plan.routes)} topics: " + ", ".join(f"{n} {p}" for p, n in sorted(counts.items()))
               + f"; {blockers} blocker(s); {len(plan.placeholders())} placeholder(s) to fill.")
    if state is None:
        why = ("--offline" if offline else
               "no QStash token: set QSTASH_TOKEN or pass --qstash-token")
        click.echo(f"Not reviewed against live QStash state ({why}): apply cannot detect "
                   "changes made in between.")


def load_inventory(path: Path) -> Inventory:
    """The inventory snapshot, refusing a schema major version this tool does not know."""
    inv = load_model(path, Inventory, "inventory", "migrator audit --format json")
    if inv.schema_version.split(".")[0] != "1":
        raise ConfigError(f"{path}: inventory schema_version {inv.schema_version} is not "
                          "supported (this tool reads 1.x); re-run `migrator audit`.")
    return inv


def _review_state(url: str | None, token: str | None, prefix: str) -> ReviewedState | None:
    if not (token or os.environ.get("QSTASH_TOKEN")):
        return None
    conn = QStashConnection.from_env(url, token)
    try:
        with QStashAdmin(conn) as admin:
            return reviewed(read_state(admin), conn.url, prefix)
    except ServiceError as exc:
        raise ServiceError(f"{exc} To plan without reading QStash, pass --offline.",
                           status=exc.status) from None
