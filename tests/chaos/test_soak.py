"""The soak of benchmarks/soak.py, one minute long: the bridge as a process at a steady rate
through every scripted fault, on the real broker, a local QStash server and a real endpoint."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.fixtures.stack import EstateInfo

pytestmark = [pytest.mark.stack, pytest.mark.qstash, pytest.mark.chaos, pytest.mark.soak]

ROOT = Path(__file__).resolve().parents[2]


def _soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_soak", ROOT / "benchmarks" / "soak.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_a_one_minute_soak_through_every_fault_loses_nothing_and_stays_flat(
    kafka_stack: EstateInfo, tmp_path: Path
) -> None:
    soak = _soak()
    # the session's broker, never a guess: a stale `migrator dev` state file on the machine
    # named a stopped broker once, and topic creation timed out (CI)
    result = soak.Soak(minutes=1.0, rate=50, sample_s=10.0,
                       bootstrap=kafka_stack.bootstrap_servers).run()
    report = soak.table(result)
    print("\n" + report)
    svg = soak.svg(result)
    assert svg.startswith("<svg") and "polyline" in svg
    assert result.exit_code is None, report
    assert len(result.faults) == 6, report  # every fault of the schedule was injected
    assert result.produced > 0 and result.lost == 0, report
    assert result.double_published == 0, report  # a record never became two QStash messages
    assert not result.error_lines, result.error_lines
    assert not result.qstash_dlq, result.qstash_dlq
    assert abs(result.rss_drift_mb) <= soak.RSS_BAND_MB, report
    assert abs(result.fd_drift) <= soak.FD_BAND, report
