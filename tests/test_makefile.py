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


def _tscheck_with_failing_npm(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    """`make tscheck` in a copy of the project whose `npm` (first on PATH) fails to install."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    scaffold = tmp_path / "tests" / "plan" / "tscheck"
    scaffold.mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "plan" / "tscheck" / "package.json", scaffold / "package.json")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text("#!/bin/sh\necho 'npm ERR! network unreachable' >&2\nexit 1\n")
    npm.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(["make", "tscheck"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=30, check=False)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_tscheck_skips_a_failed_npm_install_outside_ci_with_a_message(tmp_path: Path) -> None:
    out = _tscheck_with_failing_npm(tmp_path, ci=None)
    assert out.returncode == 0, out
    assert "npm install failed: the TypeScript scaffold type-check will be skipped" in out.stdout, out


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_tscheck_fails_the_run_when_npm_install_fails_under_ci(tmp_path: Path) -> None:
    out = _tscheck_with_failing_npm(tmp_path, ci="true")
    assert out.returncode != 0, out
    assert "npm install failed under CI (CI=true)" in out.stderr, out
    assert "will be skipped" not in out.stdout, out
