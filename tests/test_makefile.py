"""`make`: install only when pyproject.toml changed, without setuptools' editable-install banner."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_install_runs_only_when_pyproject_changed_and_quietly(tmp_path: Path) -> None:
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)

    def dry_run() -> str:
        out = subprocess.run(["make", "-n", "install"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=30, check=True)
        return out.stdout

    first = dry_run()  # never installed here: install, without the banner
    assert "pip install" in first and "ignore:Editable installation" in first, first
    # what a successful install leaves behind (-t: touch the targets, run nothing)
    subprocess.run(["make", "-t", "install"], cwd=tmp_path, check=True, capture_output=True, timeout=30)
    assert "pip install" not in dry_run()  # nothing changed: no reinstall
    later = time.time() + 2
    os.utime(tmp_path / "pyproject.toml", (later, later))
    assert "pip install" in dry_run()  # the dependencies may have changed: install again
