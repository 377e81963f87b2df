"""`migrator bridge` on the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from migrator.cli import cli


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "migrator", *args], capture_output=True,
                          text=True, timeout=60)


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
    proc = subprocess.run(
        [sys.executable, "-m", "migrator", "bridge", "run", "--config", str(path)],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in __import__("os").environ.items() if not k.startswith("QSTASH_")},
    )
    assert proc.returncode == 3 and "QSTASH_TOKEN" in proc.stderr
    proc = run_cli("bridge", "run", "--config", str(tmp_path / "missing.yaml"))
    assert proc.returncode == 3 and "cannot read" in proc.stderr
