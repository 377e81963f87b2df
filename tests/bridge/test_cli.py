"""`migrator bridge` on the command line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from migrator.cli import cli
from tests.fixtures.cli import migrator


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return migrator(*args, drop_qstash_env=False)  # in-process: these end before running


def test_schema_prints_the_json_schema() -> None:
    result = CliRunner().invoke(cli, ["bridge", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["title"] == "BridgeConfig" and "routes" in schema["properties"]


def test_config_error_is_one_line_with_file_line_and_path_exit_3(tmp_path: Path) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text(
        "kafka:\n  bootstrap_servers: 127.0.0.1:9\n  sasl_password: s3cr3t-pass\n"
        "qstash:\n  token: tok-s3cr3t\n"
        "routes:\n  - topic: t\n    destinations:\n      - kind: publish-url\n"
        "        url: https://e.example/x\n        retires: 3\n"
    )
    proc = run_cli("bridge", "run", "--config", str(path))
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"{path}:11: routes[0].destinations[0].retires: unknown field" in lines[0]
    assert "s3cr3t" not in proc.stderr + proc.stdout


def test_bad_start_and_missing_token_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text(
        "kafka: {bootstrap_servers: '127.0.0.1:9'}\n"
        "routes: [{topic: t, destinations: [{kind: publish-url, url: 'https://e.example/x'}]}]\n"
    )
    proc = run_cli("bridge", "run", "--config", str(path), "--start", "yesterday")
    assert proc.returncode == 3 and "--start 'yesterday'" in proc.stderr
    proc = migrator("bridge", "run", "--config", str(path))  # no QSTASH_* variables
    assert proc.returncode == 3 and "QSTASH_TOKEN" in proc.stderr
    proc = run_cli("bridge", "run", "--config", str(tmp_path / "missing.yaml"))
    assert proc.returncode == 3 and "cannot read" in proc.stderr


@pytest.mark.qstash
def test_wrong_qstash_token_fails_fast_with_exit_7(qstash_server: Any, tmp_path: Path) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text(
        "kafka: {bootstrap_servers: '127.0.0.1:9'}\n"
        f"qstash: {{url: '{qstash_server.url}', token: wrong-t0ken-value}}\n"
        "routes: [{topic: t, destinations: [{kind: publish-url, url: 'https://e.example/x'}]}]\n"
    )
    proc = run_cli("bridge", "run", "--config", str(path))
    assert proc.returncode == 7, proc.stderr
    assert "check qstash.token" in proc.stderr and "wrong-t0ken-value" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.stack
@pytest.mark.qstash
def test_token_refused_mid_run_stops_the_bridge_instead_of_dead_lettering(
    kafka: Any, qstash_server: Any, endpoint: Any
) -> None:
    from pydantic import SecretStr

    from migrator.bridge.runner import Bridge
    from migrator.config import KafkaConnection, QStashConnection
    from migrator.errors import ServiceError
    from tests.bridge.harness import FAST_GROUP, bridge_config
    from tests.fixtures.kafka import Rec, unique

    topic = kafka.create_topic(unique("cli-401"), partitions=1)
    kafka.produce(topic, [Rec("a")])
    group = unique("g")
    cfg = bridge_config(group=group, routes=[{"topic": topic, "destinations": [
        {"kind": "publish-url", "url": endpoint.url}]}])
    bridge = Bridge(cfg, KafkaConnection(bootstrap_servers=kafka.bootstrap),
                    qstash=QStashConnection(url=qstash_server.url, token=SecretStr("revoked")),
                    consumer_overrides=FAST_GROUP)
    with pytest.raises(ServiceError, match="refused the token"):
        bridge.run()
    assert bridge.stats.dead_lettered == 0
    assert kafka.committed(group, topic, 1)[0] < 0  # nothing committed
