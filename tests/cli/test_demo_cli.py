"""The demo's closing lines: commands as they work from the project folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from migrator.cli.demo import closing_lines, command_name


def _program(root: Path) -> Path:
    program = root / ".venv" / "bin" / "migrator"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    return program


def test_a_venv_migrator_not_on_the_path_is_named_by_its_path(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _program(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.chdir(tmp_path)
    name = command_name(".venv/bin/migrator")
    assert name == ".venv/bin/migrator"
    text = "\n".join(closing_lines(name, Path("migrator-demo")))
    assert 'eval "$(.venv/bin/migrator dev env)"' in text
    assert ".venv/bin/migrator dev down" in text
    assert ".venv/bin/migrator bridge check --config migrator-demo/plan/bridge.yaml" in text
    assert "`migrator dev down`" not in text
    absolute = "\n".join(closing_lines(name, tmp_path / "migrator-demo"))
    assert absolute == text  # paths inside this folder are shown relative to it


def test_a_migrator_on_the_path_is_named_migrator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    program = _program(tmp_path)
    monkeypatch.setenv("PATH", f"{program.parent}{os.pathsep}/usr/bin")
    assert command_name(str(program)) == "migrator"


def test_python_dash_m(tmp_path: Path) -> None:
    assert command_name(str(tmp_path / "migrator" / "__main__.py")) == f"{sys.executable} -m migrator"
