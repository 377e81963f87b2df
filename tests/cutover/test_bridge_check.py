"""`migrator bridge check` knows about gating: it reports each replaced group's cutover state and
warns about a destination that replaces no group and would start at `earliest`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cutover.harness import run_cli, write_config
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.fixtures.stack import EstateInfo

pytestmark = pytest.mark.timeout(180)


def test_bridge_check_reports_cutover_states_and_an_ungated_earliest_start(
    kafka: KafkaKit, kafka_stack: EstateInfo, endpoint: RecordingEndpoint, tmp_path: Path
) -> None:
    bootstrap = kafka_stack.bootstrap_servers
    gated, ungated = (kafka.create_topic(unique("chk"), partitions=1) for _ in range(2))
    kafka.produce(gated, [Rec(f"v{i}") for i in range(10)])
    kafka.produce(ungated, [Rec(f"v{i}") for i in range(7)])
    billing, ledger = unique("billing"), unique("ledger")
    kafka.commit_group(billing, {(gated, 0): 4})
    kafka.commit_group(ledger, {(gated, 0): 6})
    cfg = str(write_config(tmp_path / "bridge.yaml", {
        "kafka": {"bootstrap_servers": bootstrap}, "group": unique("mb"),
        "cutover_topic": unique("_cutover"),
        "routes": [
            {"topic": gated, "destinations": [
                {"kind": "direct-http", "url": endpoint.url, "replaces_group": billing},
                {"kind": "direct-http", "url": endpoint.url + "/l", "replaces_group": ledger}]},
            {"topic": ungated, "destinations": [{"kind": "direct-http", "url": endpoint.url}]}]}))

    def check() -> dict[str, Any]:
        r = run_cli("bridge", "check", "--config", cfg, "--format", "json")
        assert r.returncode == 0, r.stderr
        return dict(json.loads(r.stdout))

    first = check()
    assert [(g["group"], g["state"]) for g in first["groups"]] == [
        (billing, "old"), (ledger, "old")]
    warnings = [w for w in first["warnings"] if "replaces no consumer group" in w]
    assert len(warnings) == 1 and "routes[1].destinations[0]" in warnings[0], first["warnings"]
    assert f"{ungated!r}: it starts at `earliest`" in warnings[0]
    assert "(7 records)" in warnings[0]
    for step in (["prepare", billing], ["prepare", ledger],
                 ["switch", billing, "--watch", "1s", "--without-bridge"]):
        done = run_cli("cutover", *step, "--config", cfg)
        assert done.returncode == 0, done.stderr
    second = check()
    assert [(g["group"], g["state"]) for g in second["groups"]] == [
        (billing, "switched"), (ledger, "prepared")]
    text = run_cli("bridge", "check", "--config", cfg).stdout
    assert f"replaced group {billing!r}" in text and "switched: delivered live" in text, text
    assert f"`migrator cutover switch {ledger}`" in text, text
    assert "warning: routes[1].destinations[0] replaces no consumer group" in text
