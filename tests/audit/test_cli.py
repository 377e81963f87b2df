"""`migrator audit` as a user runs it: formats, secrets, exit codes, atomic output."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.audit.conftest import SeededEstate
from tests.fixtures.cli import migrator


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return migrator("audit", *args, env=env, drop_qstash_env=False)  # in-process


def _scram_properties(estate: SeededEstate, path: Path, password: str | None = None) -> Path:
    stack = estate.stack
    assert stack.sasl_bootstrap_servers and stack.sasl_username and stack.sasl_password
    path.write_text(
        f"bootstrap.servers={stack.sasl_bootstrap_servers}\n"
        "security.protocol=SASL_PLAINTEXT\n"
        "sasl.mechanism=SCRAM-SHA-256\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n"
        f'    username="{stack.sasl_username}" password="{password or stack.sasl_password}";\n'
    )
    return path


@pytest.mark.stack
@pytest.mark.parametrize("fmt", ["table", "json", "markdown", "html"])
def test_no_secret_in_any_format_over_scram(estate: SeededEstate, tmp_path: Path, fmt: str) -> None:
    props = _scram_properties(estate, tmp_path / "client.properties")
    registry_password = "sr-pass-" + estate.prefix
    out = tmp_path / f"report.{fmt}"
    result = run(
        "--kafka-config", str(props), "--include", estate.include,
        "--schema-registry-url", estate.stack.schema_registry_url or "",
        "--schema-registry-user", "auditor", "--schema-registry-password", registry_password,
        "--connect-url", estate.stack.connect_url or "",
        "--sample-seconds", "0", "--sample-records", "20", "--format", fmt, "-o", str(out),
    )
    assert result.returncode == 0, result.stderr
    report = out.read_text()
    everything = report + result.stdout + result.stderr
    # The report is real: it names the seeded topics and the connector.
    assert estate.t("orders") in report and estate.connector in report
    for secret in (estate.stack.sasl_password, estate.connector_secret, registry_password):
        assert secret and secret not in everything
    if fmt == "json":
        assert json.loads(report)["cluster"]["bootstrap_servers"] == estate.stack.sasl_bootstrap_servers
    if fmt == "html":
        assert "<svg" in report and "http://" not in report.split("<body>")[0]
        assert "<script" not in report and "<link" not in report


@pytest.mark.stack
def test_stdout_when_no_output_file(estate: SeededEstate) -> None:
    result = run("-b", estate.stack.bootstrap_servers, "--include", estate.include,
                 "--sample-seconds", "0", "--sample-records", "0", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {t["name"] for t in data["topics"]} == set(estate.topics.values())
    assert result.stderr == ""  # no progress drawn when stderr is not a terminal


@pytest.mark.stack
def test_wrong_scram_password_exits_5_with_one_line(estate: SeededEstate, tmp_path: Path) -> None:
    props = _scram_properties(estate, tmp_path / "bad.properties", password="not-the-password")
    result = run("--kafka-config", str(props), "--timeout", "10", "--sample-seconds", "0")
    assert result.returncode == 5
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: Kafka at ")
    assert "not-the-password" not in result.stderr and result.stdout == ""


def test_unreachable_kafka_exits_4_with_one_line(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    out.write_text("previous report")
    result = run("-b", "127.0.0.1:9", "--timeout", "3", "--format", "json", "-o", str(out))
    assert result.returncode == 4
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "127.0.0.1:9" in lines[0], result.stderr
    assert out.read_text() == "previous report"  # nothing half-written
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temp file left


@pytest.mark.timeout(120)
def test_silent_kafka_ends_at_the_timeout_with_one_line() -> None:
    # A listener that accepts TCP connections and never answers: no refusal comes back,
    # so only --timeout can end the wait.
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        result = run("-b", f"127.0.0.1:{port}", "--timeout", "2")
    assert result.returncode == 4
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "in time" in lines[0], result.stderr


@pytest.mark.stack
def test_fail_on_thresholds(estate: SeededEstate) -> None:
    base = ("-b", estate.stack.bootstrap_servers, "--include", estate.include,
            "--sample-seconds", "0", "--sample-records", "10", "--format", "json")
    # pay-as-you-go: warnings but no blocker.
    assert run(*base, "--fail-on", "blocker").returncode == 0
    assert run(*base, "--fail-on", "warning").returncode == 1
    free = run(*base, "--qstash-plan", "free", "--fail-on", "blocker")
    assert free.returncode == 1
    assert any(f["severity"] == "blocker" for f in json.loads(free.stdout)["findings"])


def test_usage_errors_exit_2() -> None:
    assert run("--format", "xml").returncode == 2
    assert run("--qstash-plan", "gold").returncode == 2
    assert run("--sample-records", "-1").returncode == 2


def test_configuration_errors_exit_3(tmp_path: Path) -> None:
    missing = run("--kafka-config", str(tmp_path / "nope.properties"))
    assert missing.returncode == 3 and "nope.properties" in missing.stderr
    bad_x = run("-b", "127.0.0.1:9", "-X", "novalue")
    assert bad_x.returncode == 3
    no_dir = run("-b", "127.0.0.1:9", "-o", str(tmp_path / "missing" / "r.json"))
    assert no_dir.returncode == 3 and not (tmp_path / "missing").exists()
    bad_url = run("-b", "127.0.0.1:9", "--schema-registry-url", "ftp://x")
    assert bad_url.returncode == 3


def test_no_bootstrap_servers_is_a_configuration_error() -> None:
    result = migrator("audit", env={"KAFKA_BOOTSTRAP_SERVERS": None}, drop_qstash_env=False)
    assert result.returncode == 3 and "bootstrap" in result.stderr


@pytest.mark.stack
@pytest.mark.parametrize(("name", "fmt"), [("report.json", "json"), ("report.html", "html"),
                                           ("report.md", "markdown"), ("report.txt", "table")])
def test_the_output_extension_chooses_the_format(estate: SeededEstate, tmp_path: Path, name: str,
                                                 fmt: str) -> None:
    out = tmp_path / name
    result = run("-b", estate.stack.bootstrap_servers, "--include", estate.include,
                 "--sample-seconds", "0", "--sample-records", "0", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert f"Wrote the {fmt} report to {out}" in result.stderr
    text = out.read_text()
    if fmt == "json":
        assert {t["name"] for t in json.loads(text)["topics"]} == set(estate.topics.values())
    else:
        assert text.lower().startswith({"html": "<!doctype html>", "markdown": "# Kafka → QStash audit",
                                "table": "kafka → qstash audit"}[fmt].lower()), text[:80]


def test_an_output_extension_contradicting_format_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = run("-b", "127.0.0.1:9", "--format", "html", "-o", str(out))
    assert result.returncode == 3, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "report.json" in line and "--format html" in line and "json" in line
    assert not out.exists()


@pytest.mark.stack
def test_sasl_settings_on_a_plaintext_listener_say_so(estate: SeededEstate) -> None:
    result = run("-b", estate.stack.bootstrap_servers, "-X", "security.protocol=SASL_PLAINTEXT",
                 "-X", "sasl.mechanism=SCRAM-SHA-256", "-X", "sasl.username=u", "-X",
                 "sasl.password=never-printed", "--timeout", "10", "--sample-seconds", "0")
    assert result.returncode == 5, result.stderr
    (line,) = result.stderr.strip().splitlines()
    servers = re.escape(estate.stack.bootstrap_servers)
    assert re.search(rf"{servers} \(SASL_PLAINTEXT [^)]*\) does not do SASL", line), line
    assert "security.protocol=PLAINTEXT" in line and "supported mechanisms" not in line
    assert "never-printed" not in result.stderr
