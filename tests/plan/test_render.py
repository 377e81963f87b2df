from __future__ import annotations

import re

from migrator.plan.builder import build_plan
from migrator.plan.endpoints import EndpointMap
from migrator.plan.render import render
from migrator.plan.scaffold import runbook

from .factories import group, inventory, topic


def _plan():
    inv = inventory([topic("orders"), topic("clicks"), topic("state", configs={"cleanup.policy": "compact"})],
                    [group("billing", "orders"), group("a", "clicks"), group("b", "clicks"),
                     group("x", "state")])
    return build_plan(inv, EndpointMap.empty())


def test_markdown_and_html_show_the_same_plan() -> None:
    plan = _plan()
    md, html = render(plan, "markdown"), render(plan, "html")
    for route in plan.routes:
        assert f"| {route.topic} | {route.pattern} | {route.reason} |" in md
        assert f"<td>{route.topic}</td><td>{route.pattern}</td>" in html
    assert md.count("FILL-ME") == html.count("FILL-ME") > 0
    assert "COMPACTED_TOPIC" in md and "COMPACTED_TOPIC" in html
    assert html.startswith("<!doctype html>") and "<script" not in html
    assert "&#x27;billing&#x27;" in html  # placeholders are escaped, not injected


def test_runbook_holds_the_commands_and_the_same_review() -> None:
    plan = _plan()
    text = runbook(plan, plan_file="plan.yaml", bridge_file=None, left_out=["orders (unmapped: billing)"],
                   endpoints_file="endpoints.yaml", inventory_file="inventory.json")
    assert text.endswith(render(plan, "markdown"))
    assert "migrator apply plan.yaml --dry-run" in text
    assert "migrator plan inventory.json --endpoints endpoints.yaml --qstash-plan payg" in text
    assert re.search(r"kafka-consumer-groups\.sh --bootstrap-server 127\.0\.0\.1:9092 --describe "
                     r"--group billing", text)
    assert "orders (unmapped: billing)" in text
    # the cutover commands, per group, before the producers move
    switch = text.index("migrator cutover switch billing --config bridge.yaml")
    assert text.index("migrator cutover prepare billing") < switch < text.index("Move the producers")
    assert "migrator cutover rollback GROUP" in text


def test_plan_md_shows_the_flow_control_keys_bridge_yaml_sends() -> None:
    from connectors.destinations import DirectHttpDestination
    from migrator.plan.builder import PlanOptions
    from migrator.plan.endpoints import EndpointFile
    from migrator.plan.scaffold import bridge_config

    inv = inventory([topic("users", partitions=6, keyed=1.0)],
                    [group("crm", "users"), group("mail", "users")])
    # flow control carries an ordered topic only where the endpoint file opts into best effort
    eps = EndpointMap(EndpointFile(groups={"*": "https://x.example.com/{group}"},
                                   ordering={"*": "best_effort"}))
    plan = build_plan(inv, eps, PlanOptions(prefix="shop-"))
    config, _ = bridge_config(plan)
    assert config is not None
    sent = [d.flow_control.key for d in config.routes[0].destinations
            if not isinstance(d, DirectHttpDestination) and d.flow_control is not None]
    assert sent == ["shop-{topic}.crm-{key}", "shop-{topic}.mail-{key}"], sent
    md = render(plan, "markdown")
    (row,) = [line for line in md.splitlines() if line.startswith("| users | best effort")]
    assert all(f"`{key}`" in row for key in sent), row
    assert "`shop-{topic}-{key}`" not in row
