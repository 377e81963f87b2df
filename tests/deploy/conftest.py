"""Fixtures for the deployment tests: helm and promqlcheck (built once with Go, cached) and the
CRD schemas."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.toolchain import (
    CrdSchemas,
    ToolchainError,
    build_helm,
    build_promqlcheck,
    crd_schemas,
    go,
)

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "kafka-qstash-bridge"
# The Kubernetes version the chart is rendered for and validated against (kubernetes-validate
# ships its schemas). A go-installed helm has no Kubernetes version stamped in, so it is passed.
KUBE_VERSION = "1.33.0"


@dataclass(frozen=True)
class Helm:
    exe: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(self.exe), *args], capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
        return done

    def template(self, *values: Path, sets: Sequence[str] = (), check: bool = True,
                 ) -> subprocess.CompletedProcess[str]:
        args = ["template", "bridge", str(CHART), "--kube-version", KUBE_VERSION]
        for path in values:
            args += ["-f", str(path)]
        for item in sets:
            args += ["--set", item]
        return self.run(*args, check=check)

    def render(self, *values: Path, sets: Sequence[str] = ()) -> list[dict[str, Any]]:
        """The rendered objects (documents that are not empty)."""
        text = self.template(*values, sets=sets).stdout
        return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.fixture(scope="session")
def helm() -> Iterator[Helm]:
    if go() is None:
        pytest.skip("Go is not installed: helm (a Go module) cannot be built here, so the chart "
                    "is not linted or rendered")
    try:
        exe = build_helm()
    except ToolchainError as exc:
        pytest.fail(f"could not build helm: {exc}", pytrace=False)
    yield Helm(exe)


@pytest.fixture(scope="session")
def crds(helm: Helm) -> CrdSchemas:
    try:
        return crd_schemas()
    except ToolchainError as exc:
        pytest.fail(f"could not fetch the CRD schemas: {exc}", pytrace=False)


@dataclass(frozen=True)
class PromQL:
    """Prometheus's own parser (promql/parser) and rule-file validation (model/rulefmt, what
    `promtool check rules` runs), through tests/deploy/promql."""

    exe: Path

    def check(self, exprs: Sequence[str] = (), rule_files: Sequence[Path] = ()
              ) -> tuple[list[str], dict[str, list[str]]]:
        """(the parse error of each expression, "" when it parses; each file's errors)."""
        done = subprocess.run([str(self.exe)], capture_output=True, text=True, timeout=60,
                              input=json.dumps({"exprs": list(exprs),
                                                "rule_files": [str(p) for p in rule_files]}))
        if done.returncode != 0:
            raise AssertionError(f"promqlcheck exited {done.returncode}: {done.stderr}")
        answer = json.loads(done.stdout)
        return list(answer["exprs"]), dict(answer["rule_files"])


@pytest.fixture(scope="session")
def promql() -> PromQL:
    if go() is None:
        pytest.skip("Go is not installed: Prometheus's PromQL parser (a Go module) cannot be "
                    "built here, so the dashboard's and the rules' expressions are not parsed")
    try:
        return PromQL(build_promqlcheck())
    except ToolchainError as exc:
        pytest.fail(f"could not build promqlcheck: {exc}", pytrace=False)
