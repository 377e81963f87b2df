"""`migrator apply` against the real local QStash server, checked through the official SDK."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from migrator.config import QStashConnection
from migrator.plan.admin import QStashAdmin
from migrator.plan.apply import apply_actions
from migrator.plan.builder import PlanOptions, build_plan
from migrator.plan.diff import diff
from migrator.plan.endpoints import EndpointFile, EndpointMap
from migrator.plan.output import build_output
from migrator.plan.spec import Plan
from migrator.plan.state import read_state, reviewed
from tests.fixtures.cli import migrator
from tests.fixtures.qstash import QStashServer

from .factories import connector, group, inventory, topic

pytestmark = pytest.mark.qstash


def run(server: QStashServer, *args: str) -> subprocess.CompletedProcess[str]:
    result = migrator(*args, env={"QSTASH_URL": server.url, "QSTASH_TOKEN": server.token})
    assert server.token not in result.stdout + result.stderr  # never leaks the token
    return result


def estate_plan(server: QStashServer | None, out: Path, *, fifo_topics: int = 1,
                endpoint: str = "https://ep.example.com") -> Plan:
    """A plan with FIFO queues, a URL group and a schedule, reviewed against ``server``."""
    topics = [topic("clicks"), *(topic(f"pay{i}", partitions=1, keyed=1.0) for i in range(fifo_topics))]
    groups = [group("stats", "clicks"), group("search", "clicks"),
              *(group(f"ledger{i}", f"pay{i}") for i in range(fifo_topics))]
    inv = inventory(topics, groups, connectors=[connector("imp", "source", ["clicks"])])
    eps = EndpointMap(EndpointFile(groups={"*": endpoint + "/{group}/{topic}"},
                                   schedules={"imp": endpoint + "/import"}))
    state = None
    if server is not None:
        with QStashAdmin(QStashConnection(url=server.url, token=SecretStr(server.token))) as admin:
            state = reviewed(read_state(admin), server.url)
    plan = build_plan(inv, eps, PlanOptions(qstash_tier="payg"), state)
    build_output(plan, inv).write(out)
    return plan


def check_live(server: QStashServer, plan: Plan) -> None:
    """Every queue, URL-group endpoint and schedule of the plan, as the SDK reads it."""
    client = server.client()
    for q in plan.resources.queues:
        live = client.queue.get(q.name)
        assert (live.parallelism, live.paused) == (q.parallelism, q.paused)
    for g in plan.resources.url_groups:
        live_group = client.url_group.get(g.name)
        assert {(e.name, e.url) for e in live_group.endpoints} == {(e.name, e.url) for e in g.endpoints}
    for s in plan.resources.schedules:
        live_s = client.schedule.get(s.schedule_id)
        assert (live_s.destination, live_s.cron, live_s.method, live_s.retries) == (
            s.destination, s.cron, s.method, s.retries)
        assert live_s.body == s.body


def test_apply_creates_then_is_a_no_op_then_updates_only_what_changed(
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path
) -> None:
    server = qstash_server_factory()
    plan = estate_plan(server, tmp_path)
    assert [len(plan.resources.queues), len(plan.resources.url_groups),
            len(plan.resources.schedules)] == [1, 1, 1]
    dry = run(server, "apply", str(tmp_path / "plan.yaml"), "--dry-run")
    assert dry.returncode == 0 and "3 to create" in dry.stdout and "Dry run" in dry.stdout
    assert server.client().queue.list() == []  # dry run changed nothing

    first = run(server, "apply", str(tmp_path / "plan.yaml"))
    assert first.returncode == 0, first.stderr
    assert "Applied 3, failed 0, not applied 0" in first.stdout
    check_live(server, plan)

    again = run(server, "apply", str(tmp_path / "plan.yaml"))
    assert again.returncode == 0 and "Nothing to do" in again.stdout and "applied" not in again.stdout

    plan2 = estate_plan(server, tmp_path, endpoint="https://v2.example.com")
    changed = run(server, "apply", str(tmp_path / "plan.yaml"))
    assert changed.returncode == 0, changed.stderr
    assert "0 to create, 2 to update, 0 to delete, 1 unchanged." in changed.stdout
    assert "= no-op   queue:pay0-0" in changed.stdout  # the queue's settings did not change
    check_live(server, plan2)


def test_apply_stops_before_touching_anything_when_live_state_moved(
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path
) -> None:
    server = qstash_server_factory()
    estate_plan(server, tmp_path)
    server.client().url_group.upsert_endpoints("clicks", [{"name": "x", "url": "https://x.example.com/"}])
    result = run(server, "apply", str(tmp_path / "plan.yaml"))
    assert result.returncode == 6
    assert "url_group:clicks (absent at review; now endpoints x=https://x.example.com/)" \
        in result.stderr and "re-run `migrator plan`" in result.stderr
    assert server.client().queue.list() == [] and server.client().schedule.list() == []


def test_prune_deletes_only_with_allow_destructive(
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path
) -> None:
    server = qstash_server_factory()
    server.client().queue.upsert("leftover", parallelism=1)
    estate_plan(server, tmp_path)
    refused = run(server, "apply", str(tmp_path / "plan.yaml"), "--prune")
    assert refused.returncode == 6 and "queue:leftover" in refused.stderr
    assert server.client().queue.get("leftover").name == "leftover"
    kept = run(server, "apply", str(tmp_path / "plan.yaml"))
    assert kept.returncode == 0 and "Kept (not in the plan" in kept.stdout
    pruned = run(server, "apply", str(tmp_path / "plan.yaml"), "--prune", "--allow-destructive")
    assert pruned.returncode == 0 and "- delete  queue:leftover" in pruned.stdout
    assert [q.name for q in server.client().queue.list()] == ["pay0-0"]


def test_failure_midway_leaves_a_report_and_a_rerun_finishes(
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path
) -> None:
    db = str(tmp_path / "qstash.db")
    server = qstash_server_factory(db=db, plan="free")  # at most 10 queues
    plan = estate_plan(server, tmp_path, fifo_topics=12)
    assert len(plan.resources.queues) == 12
    failed = run(server, "apply", str(tmp_path / "plan.yaml"))
    assert failed.returncode == 7, failed.stderr
    # queues go in name order (pay0-0, pay1-0, pay10-0, pay11-0, pay2-0 ... pay7-0): the 11th, pay8-0, fails
    msg = failed.stderr.strip().splitlines()[-1]
    assert msg.startswith("Error: apply stopped at create queue:pay8-0: QStash refused")
    assert "10 applied, 3 not applied" in msg  # pay9, the URL group and the schedule
    report = (tmp_path / "plan.apply-report.json").read_text()
    assert report.count('"applied"') == 10 and report.count('"not applied"') == 3
    assert len(server.client().queue.list()) == 10
    server.stop()
    bigger = qstash_server_factory(db=db, plan="payg", token=server.token,
                                   current_signing_key=server.current_signing_key,
                                   next_signing_key=server.next_signing_key)
    rerun = run(bigger, "apply", str(tmp_path / "plan.yaml"))
    assert rerun.returncode == 0, rerun.stderr
    assert "Applied 4, failed 0, not applied 0, unchanged 10." in rerun.stdout
    check_live(bigger, plan)


class FlakyTransport(httpx.BaseTransport):
    """Answers 429 (with QStash's burst headers) and 503 in turn for the first ``n`` requests,
    then forwards to the real server."""

    def __init__(self, n: int) -> None:
        self.left = n
        self.inner = httpx.HTTPTransport()
        self.faults = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.left > 0:
            self.left -= 1
            self.faults += 1
            if self.left % 2:
                return httpx.Response(429, headers={"Burst-RateLimit-Limit": "1",
                                                    "Burst-RateLimit-Remaining": "0",
                                                    "Burst-RateLimit-Reset": "0"}, request=request)
            return httpx.Response(503, json={"error": "unavailable"}, request=request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def test_transient_429_and_503_are_retried(
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path
) -> None:
    server = qstash_server_factory()
    plan = estate_plan(None, tmp_path)
    sleeps: list[float] = []
    flaky = FlakyTransport(4)
    with QStashAdmin(QStashConnection(url=server.url, token=SecretStr(server.token)),
                     sleep=sleeps.append, transport=flaky) as admin:
        live = read_state(admin)
        report = apply_actions(admin, diff(plan, live).actions)
    assert report.failed is None and report.count("applied") == 3
    assert flaky.faults == 4 and len(sleeps) == 4
    check_live(server, plan)


def test_persistent_server_errors_fail_with_a_clear_error(
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path
) -> None:
    server = qstash_server_factory()
    from migrator.errors import ServiceError

    with QStashAdmin(QStashConnection(url=server.url, token=SecretStr(server.token)),
                     attempts=3, sleep=lambda _s: None, transport=FlakyTransport(100)) as admin, \
            pytest.raises(ServiceError, match="could not list queues after 3 attempts"):
        read_state(admin)



def test_plan_reviewed_through_the_cli_keeps_the_token_out_of_every_file(
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path
) -> None:
    server = qstash_server_factory()
    inv = inventory([topic("clicks"), topic("pay", partitions=1, keyed=1.0)],
                    [group("stats", "clicks"), group("search", "clicks"), group("ledger", "pay")],
                    connectors=[connector("imp", "source", ["clicks"])])
    (tmp_path / "inventory.json").write_text(inv.model_dump_json())
    (tmp_path / "endpoints.yaml").write_text(
        "groups:\n  '*': https://ep.example.com/{group}/{topic}\n"
        "schedules:\n  imp: https://ep.example.com/import\n")
    out = tmp_path / "out"
    made = run(server, "plan", str(tmp_path / "inventory.json"), "--endpoints",
               str(tmp_path / "endpoints.yaml"), "-o", str(out))
    assert made.returncode == 0, made.stderr
    assert "Not reviewed" not in made.stdout  # it did read QStash with the token
    applied = run(server, "apply", str(out / "plan.yaml"))
    assert applied.returncode == 0, applied.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {"plan.yaml", "bridge.yaml", "RUNBOOK.md", "plan.apply-report.json"} <= {p.name for p in files}
    assert all(server.token not in p.read_text() for p in files)
