"""The CLI on malformed plan, endpoint and inventory files: exit 3, one line, file:line: field."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from migrator.bridge.config import load_bridge_config
from tests.fixtures.cli import migrator

from .factories import connector, group, inventory, topic


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``migrator ARGS`` in-process (no QSTASH_* from the caller): nothing here needs a process."""
    return migrator(*args, env=env)


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def estate(tmp_path: Path) -> Path:
    inv = inventory(
        [topic("orders"), topic("clicks"), topic("payments", partitions=1, keyed=1.0)],
        [group("billing", "orders"), group("a", "clicks"), group("b", "clicks"),
         group("ledger", "payments")],
        connectors=[connector("importer", "source", ["orders"])],
    )
    (tmp_path / "inventory.json").write_text(inv.model_dump_json(indent=1))
    (tmp_path / "endpoints.yaml").write_text(
        "groups:\n  billing: https://b.example.com/{topic}\n  '[ab]': https://f.example.com/{group}\n"
        "  ledger: https://l.example.com/\nschedules:\n  importer: https://j.example.com/run\n")
    return tmp_path


def make_plan(estate: Path) -> Path:
    result = run("plan", str(estate / "inventory.json"), "--endpoints",
                 str(estate / "endpoints.yaml"), "-o", str(estate / "out"))
    assert result.returncode == 0, result.stderr
    return estate / "out" / "plan.yaml"


def test_plan_writes_every_file_and_schema_prints(estate: Path) -> None:
    plan = make_plan(estate)
    out = plan.parent
    for name in ("plan.yaml", "plan.md", "RUNBOOK.md", "bridge.yaml",
                 "scaffold/python/billing.py", "scaffold/typescript/app/orders/route.ts"):
        assert (out / name).is_file(), name
    assert not list(out.rglob("*.tmp"))
    config = load_bridge_config(out / "bridge.yaml")  # the bridge's own loader accepts it as is
    assert {r.topic for r in config.routes} == {"orders", "clicks", "payments"}
    kinds = {r.topic: [d.kind for d in r.destinations] for r in config.routes}
    # one destination per group it replaces (the cutover hands groups over one at a time)
    assert kinds == {"orders": ["publish-url"], "clicks": ["publish-url", "publish-url"],
                     "payments": ["enqueue-queue"]}
    assert all(d.replaces_group for r in config.routes for d in r.destinations)
    assert config.start == "earliest" and "start:" not in (out / "bridge.yaml").read_text()
    schema = json.loads(run("plan", "schema").stdout)
    assert schema["title"] == "Plan" and schema["additionalProperties"] is False
    html = run("plan", str(estate / "inventory.json"), "-o", str(estate / "h"), "--format", "html")
    assert html.returncode == 0 and (estate / "h" / "plan.html").read_text().startswith("<!doctype")
    # re-planning into the same directory in the other format leaves no stale review behind
    again = run("plan", str(estate / "inventory.json"), "--endpoints",
                str(estate / "endpoints.yaml"), "-o", str(out), "--format", "html")
    assert again.returncode == 0, again.stderr
    assert (out / "plan.html").is_file() and not (out / "plan.md").exists()


def _edit(plan: Path, old: str, new: str) -> int:
    text = plan.read_text()
    assert old in text
    line = text[: text.index(old)].count("\n") + 1
    plan.write_text(text.replace(old, new, 1))
    return line


def test_plan_file_with_bad_yaml(estate: Path) -> None:
    plan = make_plan(estate)
    line = _edit(plan, "  pattern: publish\n", "  pattern: publish\n   : - [\n")
    msg = one_line_error(run("apply", str(plan)), 3)
    assert msg.startswith(f"Error: {plan}:{line + 1}: not valid YAML"), msg


def test_plan_file_with_wrong_type(estate: Path) -> None:
    plan = make_plan(estate)
    line = _edit(plan, "  retries: 3\n", "  retries: many\n")
    msg = one_line_error(run("apply", str(plan)), 3)
    assert msg.startswith(f"Error: {plan}:{line}: routes[0].retries: Input should be a valid integer")


def test_plan_file_with_unknown_field(estate: Path) -> None:
    plan = make_plan(estate)
    line = _edit(plan, "  retry_delay: null\n", "  retry_delay: null\n  retry_dealy: 5\n") + 1
    msg = one_line_error(run("apply", str(plan)), 3)
    assert msg.startswith(f"Error: {plan}:{line}: routes[0].retry_dealy: unknown field 'retry_dealy'")


def test_plan_file_with_a_duplicated_key(estate: Path) -> None:
    plan = make_plan(estate)
    first = _edit(plan, "  retries: 3\n", "  retries: 3\n  retries: 0\n")
    msg = one_line_error(run("apply", str(plan)), 3)
    assert msg.startswith(f"Error: {plan}:{first + 1}: 'retries' appears twice (first on line "
                          f"{first})"), msg


def test_plan_file_with_a_bad_cron(estate: Path) -> None:
    plan = make_plan(estate)
    text = plan.read_text()
    cron = next(ln for ln in text.splitlines() if ln.lstrip().startswith("cron: "))
    line = _edit(plan, cron + "\n", cron.split("cron:")[0] + "cron: every 5 minutes\n")
    msg = one_line_error(run("apply", str(plan)), 3)
    assert msg.startswith(f"Error: {plan}:{line}: resources.schedules[0].cron: 'every 5 minutes' "
                          "is not a 5-field cron expression"), msg


def test_plan_file_that_is_not_utf8(estate: Path) -> None:
    plan = make_plan(estate)
    data = plan.read_bytes()
    line = data[: data.index(b"  retries: 3")].count(b"\n") + 1
    plan.write_bytes(data.replace(b"  retries: 3", b"  retries: \xff3", 1))
    msg = one_line_error(run("apply", str(plan)), 3)
    assert msg == f"Error: {plan}:{line}: the plan file is not UTF-8 text (byte 0xff); save it as UTF-8."


def test_plan_file_with_bad_url(estate: Path) -> None:
    plan = make_plan(estate)
    line = _edit(plan, "endpoint: https://f.example.com/a", "endpoint: f.example.com/a")
    msg = one_line_error(run("apply", str(plan)), 3)
    assert msg.startswith(f"Error: {plan}:{line}: routes[0].targets[0].endpoint:")
    assert "not an http(s) URL" in msg


@pytest.mark.parametrize(
    ("content", "line", "expect"),
    [
        ("groups:\n\tbilling: https://x.example.com/\n", 2, "not valid YAML"),
        ("groups:\n  billing: 42\n", 2, "groups.billing: Input should be a valid string"),
        ("groups:\n  billing: https://x.example.com/\ngroup:\n  a: https://y/\n", 3,
         "group: unknown field 'group'"),
        ("groups:\n  billing: https://x.example.com/\n  billnig: https://y.example.com/\n", 3,
         "groups.billnig: unknown consumer group 'billnig'"),
        ("schedules:\n  nope-*: https://y.example.com/\n", 2,
         "schedules.nope-*: unknown source connector 'nope-*'"),
        ("groups:\n  billing: https://x.example.com/\n  ledger: https://l/\n  billing: https://y/\n",
         4, "'billing' appears twice (first on line 2)"),
        ("groups:\n  billing: https://x.example.com/{topics}\n", 2,
         "groups.billing: 'https://x.example.com/{topics}': unknown field {topics} in the URL"),
        ("failure_callback: https://ops.example.com/{group}\n", 1,
         "failure_callback: 'https://ops.example.com/{group}': unknown field {group}"),
        (b"groups:\n  billing: https://x.example.com/caf\xe9\n", 2,
         "the endpoint file is not UTF-8 text (byte 0xe9); save it as UTF-8."),
    ],
    ids=["bad-yaml", "wrong-type", "unknown-field", "unknown-group", "unknown-connector",
         "duplicate-key", "unknown-url-field", "field-in-callback", "not-utf8"],
)
def test_malformed_endpoint_files(
    estate: Path, content: str | bytes, line: int, expect: str
) -> None:
    eps = estate / "bad.yaml"
    eps.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = run("plan", str(estate / "inventory.json"), "--endpoints", str(eps),
                 "-o", str(estate / "never"))
    msg = one_line_error(result, 3)
    assert msg.startswith(f"Error: {eps}:{line}: "), msg
    assert expect in msg
    assert not (estate / "never").exists()  # nothing half-written


def test_malformed_inventory(estate: Path) -> None:
    inv = estate / "inventory.json"
    data = json.loads(inv.read_text())
    data["topics"][0]["partitions"] = "three"
    inv.write_text(json.dumps(data, indent=1))
    msg = one_line_error(run("plan", str(inv), "-o", str(estate / "never")), 3)
    assert f"{inv}:" in msg and "topics[0].partitions" in msg


def test_apply_refuses_placeholders_and_names_each(estate: Path) -> None:
    (estate / "endpoints.yaml").write_text("groups:\n  billing: https://b.example.com/\n")
    plan = make_plan(estate)
    result = run("apply", str(plan), "--qstash-token", "tok")
    assert result.returncode == 6 and "Traceback" not in result.stderr, result.stderr
    head, *holes, fix = result.stderr.strip().splitlines()
    assert head == f"Error: {plan}: {len(holes)} placeholder(s) to fill before apply:", head
    assert "re-run `migrator plan`" in fix
    wheres = ("group[a]", "group[b]", "group[ledger]", "url_group[clicks].endpoint[a]",
              "schedule[connector-importer]")
    assert len(holes) >= len(wheres) and all(line.startswith("  ") for line in holes)  # one per line
    for where in wheres:
        assert sum(where in line for line in holes) == 1, where
    assert "FILL-ME" in yaml.safe_load(plan.read_text())["routes"][0]["targets"][0]["endpoint"]


def test_apply_without_token_is_a_config_error(estate: Path) -> None:
    plan = make_plan(estate)
    msg = one_line_error(run("apply", str(plan)), 3)
    assert "QSTASH_TOKEN" in msg


def test_apply_refuses_a_plan_over_the_qstash_plan_limits(tmp_path: Path) -> None:
    # two fanned-out topics need two URL groups; the free plan allows one
    inv = inventory([topic("a", rps=0.001), topic("b", rps=0.001)],
                    [group("g1", "a", "b"), group("g2", "a", "b")])
    (tmp_path / "inventory.json").write_text(inv.model_dump_json())
    (tmp_path / "endpoints.yaml").write_text("groups:\n  '*': https://l.example.com/{group}\n")
    made = run("plan", str(tmp_path / "inventory.json"), "--endpoints",
               str(tmp_path / "endpoints.yaml"), "--qstash-plan", "free", "-o", str(tmp_path / "out"))
    assert made.returncode == 0, made.stderr
    plan = tmp_path / "out" / "plan.yaml"
    # refused before QStash is even read (no token here), naming the limit and the fix
    msg = one_line_error(run("apply", str(plan), "--dry-run"), 6)
    assert msg.startswith(f"Error: {plan}: the plan does not fit the free QStash plan: "
                          "qstash:url_groups: the plan needs 2 URL groups; the free plan allows 1."), msg
    assert "--qstash-plan" in msg
    # the same estate on pay-as-you-go fits: apply gets as far as asking for a token
    run("plan", str(tmp_path / "inventory.json"), "--endpoints", str(tmp_path / "endpoints.yaml"),
        "--qstash-plan", "payg", "-o", str(tmp_path / "out"))
    assert "No QStash token" in one_line_error(run("apply", str(plan), "--dry-run"), 3)


def test_an_unwritable_output_changes_nothing(estate: Path) -> None:
    out = estate / "out"
    out.mkdir()
    (out / "plan.yaml").write_text("old plan\n")
    (out / "scaffold").write_text("a file where the scaffold directory goes\n")
    result = run("plan", str(estate / "inventory.json"), "--endpoints",
                 str(estate / "endpoints.yaml"), "-o", str(out))
    msg = one_line_error(result, 3)
    assert msg.startswith(f"Error: -o {out}: cannot write ") and "nothing was changed" in msg
    assert (out / "plan.yaml").read_text() == "old plan\n"  # all or nothing
    assert sorted(p.name for p in out.iterdir()) == ["plan.yaml", "scaffold"]  # no temp files
    missing = one_line_error(run("plan", str(estate / "inventory.json"), "-o",
                                 str(estate / "inventory.json") + "/sub"), 3)
    assert "cannot write" in missing


def test_plan_help_shows_the_main_form_and_its_options() -> None:
    from click.testing import CliRunner

    from migrator.cli import cli

    result = CliRunner().invoke(cli, ["plan", "--help"], prog_name="migrator")
    assert result.exit_code == 0, result.output
    assert "migrator plan INVENTORY.json -o DIR [OPTIONS]" in result.output
    for option in ("--endpoints", "-o, --output", "--qstash-plan", "--offline", "--format"):
        assert option in result.output, option
    assert "schema" in result.output and "plan build" not in result.output
    assert CliRunner().invoke(cli, ["plan", "build", "--help"]).exit_code == 0  # still accepted


def test_offline_plan_with_a_token_says_why_it_was_not_reviewed(estate: Path) -> None:
    args = ("plan", str(estate / "inventory.json"), "-o", str(estate / "out"))
    offline = run(*args, "--offline", env={"QSTASH_TOKEN": "tok"})
    assert offline.returncode == 0, offline.stderr
    assert "Not reviewed against live QStash state (--offline)" in offline.stdout
    assert "no token" not in offline.stdout
    tokenless = run(*args)
    assert "(no QStash token: set QSTASH_TOKEN or pass --qstash-token)" in tokenless.stdout


@pytest.mark.parametrize("kind", ["html", "table", "markdown", "bridge", "plan-on-inventory"])
def test_a_file_of_the_wrong_kind_is_named(estate: Path, kind: str) -> None:
    from migrator.audit.report import render
    from migrator.inventory import Inventory

    inv = Inventory.model_validate_json((estate / "inventory.json").read_text())
    if kind == "plan-on-inventory":  # apply wants a plan, gets the inventory
        msg = one_line_error(run("apply", str(estate / "inventory.json"), "--qstash-token", "t"), 3)
        assert "is an audit inventory" in msg and "`migrator apply` reads a plan file" in msg, msg
        return
    if kind == "bridge":
        plan = make_plan(estate)
        wrong, what = plan.parent / "bridge.yaml", "a bridge config"
    else:
        ext = {"html": "html", "table": "txt", "markdown": "md"}[kind]
        wrong = estate / f"audit.{ext}"
        wrong.write_text(render(inv, kind))
        what = {"html": "an HTML audit report", "table": "a table audit report",
                "markdown": "a Markdown audit report"}[kind]
    msg = one_line_error(run("plan", str(wrong), "-o", str(estate / "never")), 3)
    assert f"{wrong}: this is {what}" in msg, msg
    assert "migrator audit --format json" in msg
    assert "not valid YAML" not in msg and "more)" not in msg
    assert not (estate / "never").exists()
