"""benchmarks/verify.py at a small size in the suite (the 100k run is the CLI's: `python
benchmarks/verify.py --sizes 20000,100000`): every record verified delivered, and verify reads
exactly as many log pages as the SDK loop it is compared with. No duration is asserted."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.fixtures.stack import EstateInfo

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[2]


def _benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_verify", ROOT / "benchmarks" / "verify.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_verify_benchmark_at_2000_records(kafka_stack: EstateInfo,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_stack.bootstrap_servers)
    result = _benchmark().run(2000)
    assert result["verdict"] == "verified", result
    assert result["delivered"] == 2000 and result["gaps"] == 0, result
    assert result["verify_pages"] == result["sdk_pages"], result
    assert result["verify_peak_mb"] > 0 and result["sdk_peak_mb"] > 0, result
