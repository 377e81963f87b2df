"""The YAML loader's refusals and the atomic writer's file modes (pure logic, temp files)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from migrator.errors import ConfigError
from migrator.yamlfile import read_yaml, write_atomic


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_written_files_get_a_plain_mode_and_keep_an_existing_one(tmp_path: Path) -> None:
    fresh = tmp_path / "plan.yaml"
    write_atomic(fresh, "a: 1\n")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~_umask()  # not mkstemp's 0600
    fresh.chmod(0o640)
    write_atomic(fresh, "a: 2\n")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o640 and fresh.read_text() == "a: 2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["plan.yaml"]


def test_duplicate_keys_are_refused_with_both_lines_and_merge_keys_still_work(tmp_path: Path) -> None:
    dup = tmp_path / "d.yaml"
    dup.write_text("routes:\n  - topic: a\n    retries: 3\n    retries: 5\n")
    with pytest.raises(ConfigError, match=r"d.yaml:4: 'retries' appears twice \(first on line 3\)"):
        read_yaml(dup, "plan file")
    merged = tmp_path / "m.yaml"
    merged.write_text("base: &b {x: 1}\nitem:\n  <<: *b\n  y: 2\n")
    assert read_yaml(merged, "plan file") == {"base": {"x": 1}, "item": {"x": 1, "y": 2}}
