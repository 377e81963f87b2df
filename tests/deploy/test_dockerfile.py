"""What can be checked of deploy/Dockerfile without a container engine (none is reachable here):
its shape (multi-stage, non-root, exec form), that its command is one the CLI accepts, that the
files it copies exist, and that its HEALTHCHECK command works against a real metrics server."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field

import click
import yaml

from migrator.bridge.metrics import BridgeMetrics, MetricsServer
from migrator.cli import cli
from tests.deploy.conftest import CHART, ROOT

DOCKERFILE = ROOT / "deploy" / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def last(self, op: str) -> str | None:
        found = [arg for o, arg in self.instructions if o == op]
        return found[-1] if found else None

    def all(self, op: str) -> list[str]:
        return [arg for o, arg in self.instructions if o == op]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs and the stages: instructions with continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op, rest = op.upper(), rest.strip()
        if op == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
            stages.append(Stage(base, words[2] if len(words) > 2 else None))
        elif not stages:
            assert op == "ARG", f"{op} before the first FROM"
            name, _, value = rest.partition("=")
            args[name] = value
        else:
            stages[-1].instructions.append((op, rest))
    return args, stages


def exec_form(arg: str) -> list[str]:
    value = json.loads(arg)  # shell form is not JSON: fails here
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), arg
    return value


def _stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text())[1]


def test_multi_stage_non_root_exec_form() -> None:
    stages = _stages()
    assert len(stages) >= 2
    final = stages[-1]
    user = final.last("USER")
    assert user is not None, "the final stage sets no USER (it would run as root)"
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {user}: use a numeric non-zero uid"
    # only the built virtualenv crosses into the final stage
    assert [c for c in final.all("COPY") if "--from=" in c] == [
        f"--from={stages[0].name} /opt/migrator /opt/migrator"]
    entrypoint, cmd = final.last("ENTRYPOINT"), final.last("CMD")
    assert entrypoint is not None and cmd is not None
    assert exec_form(entrypoint) == ["migrator"]  # PID 1 is migrator: it gets SIGTERM itself
    assert exec_form(cmd)[:2] == ["bridge", "run"]


def test_the_default_command_is_one_the_cli_accepts() -> None:
    final = _stages()[-1]
    argv = exec_form(final.last("CMD") or "")
    group = cli.get_command(click.Context(cli), argv[0])
    assert isinstance(group, click.Group)
    run = group.get_command(click.Context(group), argv[1])
    assert run is not None
    ctx = run.make_context(argv[1], argv[2:])  # raises UsageError on an unknown option
    assert ctx.params["metrics_port"] == 9100 and ctx.params["json_logs"] is True
    # the image's port is the chart's
    assert final.all("EXPOSE") == ["9100"]
    assert yaml.safe_load((CHART / "values.yaml").read_text())["metricsPort"] == 9100


def test_copied_files_exist_and_the_base_python_is_supported() -> None:
    stages = _stages()
    for copy in stages[0].all("COPY"):
        *sources, _dest = copy.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the build context"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = tuple(int(p) for p in requires.removeprefix(">=").split("."))
    for stage in stages:
        version = re.match(r"python:(\d+)\.(\d+)", stage.base)
        assert version, stage.base
        assert (int(version[1]), int(version[2])) >= minimum


def test_healthcheck_probes_healthz_and_fails_when_the_loop_stalls() -> None:
    final = _stages()[-1]
    check = final.last("HEALTHCHECK")
    assert check is not None
    options, _, command = check.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = exec_form(command)
    assert argv[0] == "python"
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", argv[-1])
    assert url and url[1] == "9100" and url[2] == "/healthz"
    metrics = BridgeMetrics()
    server = MetricsServer(metrics, 0, host="127.0.0.1")
    try:
        probe = [sys.executable, *argv[1:-1], argv[-1].replace(":9100/", f":{server.port}/")]
        ok = subprocess.run(probe, capture_output=True, text=True, timeout=30)
        assert ok.returncode == 0, ok.stderr
        metrics.heartbeat = time.monotonic() - 60  # the loop has not ticked for a minute
        stalled = subprocess.run(probe, capture_output=True, text=True, timeout=30)
        assert stalled.returncode != 0 and "503" in stalled.stderr, shlex.join(probe)
    finally:
        server.close()
