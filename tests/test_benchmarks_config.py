"""The benchmarks find the stack as `migrator dev env` does, and the repository names no path
of one machine."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from migrator.stack.state import StackInfo, save_state

ROOT = Path(__file__).resolve().parents[1]


def _benchmark(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _state(run_dir: Path) -> None:
    run_dir.mkdir()
    save_state(StackInfo(bootstrap_servers="127.0.0.1:1111", sasl_bootstrap_servers="127.0.0.1:2",
                         sasl_username="u", sasl_password="p", schema_registry_url="http://r",
                         connect_url="http://c", cluster_id="x", run_dir=str(run_dir),
                         lib_dir="/opt/kafka-libs"))


def test_benchmarks_read_the_stacks_own_state_or_the_documented_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _state(tmp_path / "dev")
    monkeypatch.setenv("MIGRATOR_DEV_DIR", str(tmp_path / "dev"))
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "KAFKA_LIB_DIR"):
        monkeypatch.delenv(name, raising=False)
    bridge, audit = _benchmark("bridge"), _benchmark("audit")
    assert bridge._bootstrap() == "127.0.0.1:1111"
    assert audit.stack_defaults() == ("127.0.0.1:1111", "/opt/kafka-libs")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:3333")  # the documented variable wins
    assert bridge._bootstrap() == "127.0.0.1:3333"
    assert audit.stack_defaults() == ("127.0.0.1:3333", "/opt/kafka-libs")


def test_no_path_of_this_machine_in_benchmarks_docs_or_build_files() -> None:
    machine = re.compile(r"/tmp/(venv|devstack)|/work/|/root/|/home/\w")
    files = [*(ROOT / "benchmarks").glob("*.py"), *(ROOT / "docs").glob("*.md"), ROOT / "README.md",
             ROOT / "Makefile", ROOT / "pyproject.toml"]
    found = [f"{f.relative_to(ROOT)}:{n}: {line.strip()}" for f in files
             for n, line in enumerate(f.read_text().splitlines(), 1) if machine.search(line)]
    assert found == []
