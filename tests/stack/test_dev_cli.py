"""`migrator dev` as a user runs it: a full up / status / logs / down cycle in its own directory,
reuse of a running stack, and one clear line when Java is missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.endpoint import RecordingEndpoint

pytestmark = pytest.mark.stack


# A real process on purpose: `dev up` starts servers that outlive the command and `dev down`
# stops them by pid; `dev qstash` runs until SIGTERM; the missing-tool tests change PATH for the
# whole process tree.
def migrator(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "migrator", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)


def test_up_status_logs_down_cycle(tmp_path: Path, endpoint: RecordingEndpoint) -> None:
    run_dir = str(tmp_path / "stack")
    up = migrator("dev", "up", "--run-dir", run_dir, "--json")
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout)
    try:
        for key in ("bootstrap_servers", "sasl_bootstrap_servers", "sasl_username", "sasl_password",
                    "schema_registry_url", "connect_url", "qstash_url", "qstash_token",
                    "qstash_current_signing_key", "qstash_next_signing_key"):
            assert info[key], key
        assert json.loads((Path(run_dir) / "stack.json").read_text()) == info
        # the SASL_SSL listener managed services use (tests/stack/test_sasl_ssl.py uses it)
        assert info["sasl_ssl_bootstrap_servers"].startswith("127.0.0.1:")
        assert info["sasl_ssl_mechanisms"] == ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
        assert info["mtls_bootstrap_servers"].startswith("127.0.0.1:")
        assert Path(info["ssl_client_certificate_file"]).is_file()
        assert info["oauth_bootstrap_servers"].startswith("127.0.0.1:")
        assert info["oidc_token_endpoint_url"].endswith("/token") and info["oidc_client_secret"]

        again = migrator("dev", "up", "--run-dir", run_dir, "--json")
        assert again.returncode == 0
        assert "already running" in again.stderr
        assert json.loads(again.stdout)["bootstrap_servers"] == info["bootstrap_servers"]

        status = migrator("dev", "status", "--run-dir", run_dir)
        assert status.returncode == 0, status.stdout
        assert {line.split()[0] for line in status.stdout.splitlines()} >= {"kafka", "registry", "connect", "qstash",
                                                                            "oidc"}
        assert all("ready" in line for line in status.stdout.splitlines())

        # The stack's QStash server delivers, signed with the keys the JSON names.
        from qstash import QStash, Receiver

        client = QStash(info["qstash_token"], base_url=info["qstash_url"])
        client.message.publish_json(url=f"{endpoint.url}/hook", body={"hello": "stack"})
        client.http._client.close()  # the SDK has no close() of its own
        (req,) = endpoint.wait_for(1)
        Receiver(current_signing_key=info["qstash_current_signing_key"],
                 next_signing_key=info["qstash_next_signing_key"]).verify(
            body=req.body.decode(), signature=req.headers["upstash-signature"], url=f"{endpoint.url}/hook")

        exports = migrator("dev", "env", "--run-dir", run_dir).stdout
        assert f"export KAFKA_BOOTSTRAP_SERVERS={info['bootstrap_servers']}" in exports.splitlines()
        assert f"export QSTASH_TOKEN={info['qstash_token']}" in exports.splitlines()
        assert (f"export KAFKA_SASL_SSL_BOOTSTRAP_SERVERS={info['sasl_ssl_bootstrap_servers']}"
                in exports.splitlines())

        logs = migrator("dev", "logs", "kafka", "--run-dir", run_dir, "-n", "5")
        assert logs.returncode == 0 and logs.stdout.startswith("==> kafka <==")
        bad = migrator("dev", "logs", "nope", "--run-dir", run_dir)
        assert bad.returncode == 8 and "No server named 'nope'" in bad.stderr
    finally:
        down = migrator("dev", "down", "--run-dir", run_dir)
    assert down.returncode == 0, down.stderr
    assert not Path(run_dir).exists()
    pids = [p["pid"] for p in info["processes"]]
    assert not any(Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]
                   for pid in pids)
    after = migrator("dev", "status", "--run-dir", run_dir)
    assert after.returncode == 1 and "No stack is running" in after.stdout


def test_missing_java_is_one_clear_line(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bin_dir), "JAVA_HOME": ""}
    out = migrator("dev", "up", "--run-dir", str(tmp_path / "s"), env=env)
    assert out.returncode == 8, out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines == ["Error: `java` is not on PATH: install a Java 17+ runtime (e.g. "
                     "`apt-get install openjdk-17-jre-headless`), then retry."], lines
    assert shutil.which("java")  # the real machine still has it


def test_missing_maven_is_one_clear_line(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    java = shutil.which("java")
    assert java
    (bin_dir / "java").symlink_to(java)
    env = {**os.environ, "PATH": str(bin_dir), "MIGRATOR_STACK_CACHE": str(tmp_path / "empty-cache")}
    out = migrator("dev", "up", "--run-dir", str(tmp_path / "s"), env=env)
    assert out.returncode == 8, out.stderr
    assert out.stderr.strip().splitlines() == [
        "Error: `mvn` is not on PATH: install Apache Maven 3.8+ (e.g. `apt-get install maven`), then retry."]


def test_a_server_failing_to_start_shows_its_log_and_exits_non_zero(tmp_path: Path) -> None:
    real_java = shutil.which("java")
    assert real_java
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "java"
    # A `java` whose Kafka broker dies at start; every other JVM (format, registry) is the real one.
    fake.write_text(f"""#!/bin/sh
case "$*" in
  *kafka.Kafka\\ *) echo "FATAL the broker cannot start: disk on fire"; exit 1;;
  *) exec {real_java} "$@";;
esac
""")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    run_dir = tmp_path / "s"
    out = migrator("dev", "up", "--run-dir", str(run_dir), env=env)
    assert out.returncode == 8, out.stderr
    assert "Kafka broker exited with code 1 while starting" in out.stderr
    assert "FATAL the broker cannot start: disk on fire" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (run_dir / "stack.json").exists()


def test_dev_qstash_runs_alone_with_generated_credentials(endpoint: RecordingEndpoint) -> None:
    from qstash import QStash, Receiver

    proc = subprocess.Popen([sys.executable, "-m", "migrator", "dev", "qstash", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        ready = proc.stdout.readline().split()
        assert ready[0] == "READY", ready
        creds = dict(proc.stderr.readline().strip().split(": ", 1) for _ in range(3))
        client = QStash(creds["TOKEN"], base_url=ready[1])
        client.message.publish_json(url=f"{endpoint.url}/alone", body={"n": 1})
        client.http._client.close()  # the SDK has no close() of its own
        (req,) = endpoint.wait_for(1)
        Receiver(current_signing_key=creds["CURRENT-SIGNING-KEY"],
                 next_signing_key=creds["NEXT-SIGNING-KEY"]).verify(
            body=req.body.decode(), signature=req.headers["upstash-signature"], url=f"{endpoint.url}/alone")
    finally:
        proc.terminate()
        code = proc.wait(timeout=30)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        assert code in (0, -15)
