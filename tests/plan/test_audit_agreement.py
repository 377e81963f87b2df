"""The audit and the plan of the same seeded estate agree (issue 14, defect 3): the same
messages/day figure in the audit's table, markdown and HTML and in plan.md, the same severity for
every code both report, and each report saying how the figure was measured."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from migrator.audit import AuditOptions, run_audit
from migrator.audit.html import render_html
from migrator.audit.report import render_markdown, render_table
from migrator.config import KafkaConnection, RestConnection
from migrator.inventory import Inventory
from migrator.plan.builder import PlanOptions, build_plan
from migrator.plan.endpoints import EndpointMap
from migrator.plan.render import render
from migrator.stack.sample import seed_sample_estate
from tests.fixtures.kafka import unique
from tests.fixtures.stack import EstateInfo

pytestmark = pytest.mark.stack

NO_SAMPLE = "no throughput sample: run audit with --sample-seconds"


@pytest.fixture(scope="module")
def sample_prefix(kafka_stack: EstateInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The sample estate (`migrator dev seed`) under a prefix of its own on the shared broker."""
    prefix = unique("agree")
    info = SimpleNamespace(bootstrap_servers=kafka_stack.bootstrap_servers,
                           schema_registry_url=kafka_stack.schema_registry_url,
                           connect_url=kafka_stack.connect_url,
                           run_dir=str(tmp_path_factory.mktemp("agree")))
    # 600 orders alone are over the free tier's 1,000 messages/day once the sink connector's
    # group reads them too; with or without it, the whole estate is
    sample = seed_sample_estate(info, prefix, orders=600)  # type: ignore[arg-type]
    yield prefix
    if sample.connector and kafka_stack.connect_url:
        httpx.delete(f"{kafka_stack.connect_url}/connectors/{sample.connector}", timeout=30)


def _audit(stack: EstateInfo, prefix: str, tier: str, sample_seconds: float) -> Inventory:
    return run_audit(AuditOptions(
        kafka=KafkaConnection.build(bootstrap_servers=stack.bootstrap_servers),
        schema_registry=RestConnection(url=stack.schema_registry_url or "", timeout=20.0),
        connect=RestConnection(url=stack.connect_url or "", timeout=20.0),
        include=(f"{prefix}*",), timeout=20.0, sample_seconds=sample_seconds,
        sample_records=20, qstash_tier=tier,  # type: ignore[arg-type]
    ))


def _figure(pattern: str, text: str, where: str) -> str:
    """The messages/day figure as the report prints it."""
    match = re.search(pattern, text)
    assert match, f"no messages/day figure in the {where}"
    return match.group(1)


def _reports(inv: Inventory) -> tuple[dict[str, str], str, list[tuple[str, str]]]:
    """The audit's reports by format, plan.md, and the plan's (code, severity) blockers."""
    plan = build_plan(inv, EndpointMap.empty(), PlanOptions(qstash_tier=inv.qstash_plan))
    audit = {"table": render_table(inv), "markdown": render_markdown(inv),
             "html": render_html(inv)}
    return audit, render(plan, "markdown"), [(b.code, b.severity) for b in plan.blockers]


@pytest.mark.parametrize(("tier", "sample_seconds"), [("free", 0.0), ("payg", 1.0)])
def test_audit_and_plan_agree_on_a_seeded_estate(
    kafka_stack: EstateInfo, sample_prefix: str, tier: str, sample_seconds: float, tmp_path: Path
) -> None:
    inv = _audit(kafka_stack, sample_prefix, tier, sample_seconds)
    audit, plan_md, plan_blockers = _reports(inv)

    # one volume estimate, stated identically everywhere
    figures = {
        "table": _figure(r"projected messages/day\s+([\d,]+)", audit["table"], "table"),
        "markdown": _figure(r"\*\*projected messages/day\*\*\s*\|\s*([\d,]+)", audit["markdown"],
                            "markdown"),
        "html": _figure(r'Messages / day</div><div class="v"[^>]*>([^<]+)<', audit["html"], "html"),
        "plan.md": _figure(r"About \*\*([\d,]+) messages/day\*\*", plan_md, "plan.md"),
    }
    assert len(set(figures.values())) == 1, figures
    # the sample estate was just written: its records of the last 24 h are the volume
    assert int(figures["plan.md"].replace(",", "")) > 1000, figures

    # each report says how it was measured, and what to run when the sample is missing
    for where, text in {**audit, "plan.md": plan_md}.items():
        assert "last 24 h" in text, where
        assert (NO_SAMPLE in text) == (sample_seconds == 0), where

    # one rule for what blocks: every code both report carries the same severity in both
    audit_codes = {(f.code, f.severity) for f in inv.findings}
    shared = {code for code, _ in plan_blockers} & {f.code for f in inv.findings}
    assert "COMPACTED_TOPIC" in shared, (audit_codes, plan_blockers)
    for code in shared:
        assert {s for c, s in plan_blockers if c == code} == {s for c, s in audit_codes if c == code}, code
    audit_blockers = sum(1 for f in inv.findings if f.severity == "blocker")
    plan_summary = re.search(r"(\d+) blocker\(s\)", plan_md)
    assert plan_summary, plan_md[:500]
    if tier == "free":  # over the free tier's 1,000 messages/day in both
        assert ("DAILY_QUOTA", "blocker") in audit_codes and ("DAILY_QUOTA", "blocker") in plan_blockers
    else:
        assert audit_blockers == int(plan_summary.group(1)) == 0, (audit_codes, plan_blockers)
