"""The main job end to end: seed, audit, plan, apply twice, bridge, cut each group over from a
real old consumer process (one rollback and re-switch) while a producer writes: old consumer +
endpoint processed every record once per group; every delivery signed."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator.demo import run_demo, summary
from migrator.stack.state import StackInfo
from tests.fixtures.qstash import QStashServer
from tests.fixtures.stack import EstateInfo

pytestmark = [pytest.mark.stack, pytest.mark.qstash]


def test_demo_delivers_every_record_once(kafka_stack: EstateInfo, qstash_server: QStashServer,
                                         tmp_path: Path) -> None:
    assert kafka_stack.schema_registry_url and kafka_stack.connect_url
    info = StackInfo(
        bootstrap_servers=kafka_stack.bootstrap_servers,
        sasl_bootstrap_servers=kafka_stack.sasl_bootstrap_servers or "",
        sasl_username=kafka_stack.sasl_username or "", sasl_password=kafka_stack.sasl_password or "",
        schema_registry_url=kafka_stack.schema_registry_url, connect_url=kafka_stack.connect_url,
        qstash_url=qstash_server.url, qstash_token=qstash_server.token,
        qstash_current_signing_key=qstash_server.current_signing_key,
        qstash_next_signing_key=qstash_server.next_signing_key,
        cluster_id=kafka_stack.cluster_id or "", run_dir=str(tmp_path), lib_dir=kafka_stack.lib_dir or "",
    )
    steps: list[str] = []
    result = run_demo(info, tmp_path / "work", steps.append, timeout=240)
    assert result.ok, summary(result)
    # per group, the old consumer (a real process, stopped and restarted around the cutover,
    # while a producer kept writing) and the endpoint processed every record once
    assert len(result.groups) == 6 and all(m == 0 and d == 0 for _o, _n, m, d in result.groups.values())
    assert sum(old for old, _n, _m, _d in result.groups.values()) > 0
    assert any(s.startswith("$ migrator cutover rollback") for s in steps)
    assert sum(1 for s in steps if s.startswith("$ migrator cutover switch")) == 7
    assert any(line.startswith("Nothing to do") for line in result.second_apply.splitlines())
    assert (tmp_path / "work" / "audit.html").stat().st_size > 1000
    assert any(s.startswith("$ migrator bridge run") for s in steps)
    # the counts add up, each with its unit: records read (by each group's bridge, from its
    # hand-off on), messages sent, deliveries (each endpoint's records, as expected)
    assert result.records_read > 0 and result.messages_sent > 0
    expected = sum(result.expected.values())
    assert result.deliveries == expected > 0
    text = summary(result)
    assert '{"ok"' not in text and text.splitlines()[-1].startswith("Demo passed")
    stages = ("audit", "plan", "apply", "bridge", "delivery", "cutover")
    stage_lines = [line for line in text.splitlines() if line.split()[:1] and line.split()[0] in stages]
    assert {line.split()[0] for line in stage_lines} == set(stages)
    assert all(" ok " in line for line in stage_lines), text
    assert sum(1 for line in stage_lines if line.startswith("cutover ") and "exactly once" in line) == 6
    assert f"{result.records_read:,} records read" in text
    assert f"{result.messages_sent:,} messages sent" in text
    assert f"{result.deliveries:,} deliveries of {expected:,}" in text and "records expected" in text
