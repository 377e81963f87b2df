"""Pure logic: durations, retry delays, Retry-After, cron with CRON_TZ, publish headers, CLI."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from qstash_server.cli import build_settings
from qstash_server.engine.publish_config import canonical_header, parse_flow_control, parse_publish_config
from qstash_server.engine.schedules import next_fire_ms, validate_cron
from qstash_server.engine.timing import (
    BadValue,
    default_backoff_s,
    evaluate_retry_delay_ms,
    parse_duration_s,
    retry_after_s,
)
from qstash_server.errors import ServerConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10), ("1m", 60), ("2h", 7200), ("7d", 604800), ("1d10h30m", 124200), ("5", 5),
     ("0.5s", 0.5)],
)
def test_durations(text, seconds):
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "10x", "-5s", "1s1"])
def test_bad_durations(text):
    with pytest.raises(BadValue):
        parse_duration_s(text)


def test_default_backoff_matches_qstash_table():
    assert [round(default_backoff_s(n)) for n in (1, 2, 3, 4)] == [12, 148, 1808, 22026]
    assert default_backoff_s(5) == 86400 == default_backoff_s(9)


def test_retry_delay_expressions():
    assert evaluate_retry_delay_ms("1000", 3) == 1000
    assert evaluate_retry_delay_ms("1000 * (1 + retried)", 2) == 3000
    assert evaluate_retry_delay_ms("pow(2, retried) * 1000", 3) == 8000
    assert evaluate_retry_delay_ms("max(10, min(exp(retried), 5))", 1) == 10
    assert math.isclose(evaluate_retry_delay_ms("sqrt(retried) * 100", 4), 200)
    for bad in ("__import__('os')", "retried.real", "open('x')", "1 +", "lambda: 1"):
        with pytest.raises(BadValue):
            evaluate_retry_delay_ms(bad, 0)


def test_retry_after_forms():
    now = 1_700_000_000.0
    assert retry_after_s({"retry-after": "30"}, now) == 30
    assert retry_after_s({"retry-after": "0"}, now) == 0
    assert retry_after_s({"x-ratelimit-reset-requests": "6m5s"}, now) == 365
    assert retry_after_s({"retry-after": "Tue, 14 Nov 2023 22:00:00 GMT"}, now) == 0  # past
    date = datetime.fromtimestamp(now + 120, tz=UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry_after_s({"retry-after": date}, now) == pytest.approx(120, abs=1)
    assert retry_after_s({"retry-after": str(2 * 86400)}, now) is None  # > 1 day: default backoff
    assert retry_after_s({}, now) is None


def test_cron_with_and_without_time_zone():
    start = int(datetime(2026, 1, 15, 12, 0, tzinfo=UTC).timestamp() * 1000)
    utc = next_fire_ms("0 4 * * *", start)
    assert datetime.fromtimestamp(utc / 1000, tz=UTC) == datetime(
        2026, 1, 16, 4, 0, tzinfo=UTC)
    ny = next_fire_ms("CRON_TZ=America/New_York 0 4 * * *", start)
    local = datetime.fromtimestamp(ny / 1000, tz=ZoneInfo("America/New_York"))
    assert (local.day, local.hour, local.minute) == (16, 4, 0)
    assert ny - utc == 5 * 3600 * 1000  # EST is UTC-5 in January
    for bad in ("* * *", "61 * * * *", "CRON_TZ=Nowhere/City * * * * *"):
        with pytest.raises(BadValue):
            validate_cron(bad)


def test_publish_headers_parse():
    cfg = parse_publish_config({
        "content-type": "application/json",
        "upstash-forward-x-trace": "t",
        "upstash-forward-content-length": "999",
        "upstash-method": "put",
        "upstash-delay": "1m",
        "upstash-retries": "0",
        "upstash-callback": "http://cb/x",
        "upstash-callback-forward-tag": "c",
        "upstash-failure-callback-retries": "1",
        "upstash-flow-control-key": "k",
        "upstash-flow-control-value": "rate=4,parallelism=2, period=1h30m3s",
        "upstash-label": "a,b",
        "upstash-retry-delay": "",  # empty header = not given
    })
    assert cfg.method == "PUT" and cfg.delay_ms == 60_000 and cfg.max_retries == 0
    assert cfg.header == {"X-Trace": ["t"], "Content-Type": ["application/json"]}
    assert cfg.callback_cfg == {"forward-tag": "c"}
    assert cfg.failure_callback_cfg == {"retries": "1"}
    assert cfg.flow is not None and (cfg.flow.rate, cfg.flow.parallelism, cfg.flow.period) == (
        4, 2, 5403)
    assert cfg.retry_delay_expr is None
    assert parse_flow_control("k", "rate=3") == parse_flow_control("k", "rate=3, period=1s")
    for headers in ({"upstash-method": "BREW"}, {"upstash-retries": "-1"},
                    {"upstash-callback": "ftp://x"}, {"upstash-flow-control-value": "rate=1"},
                    {"upstash-deduplication-id": "a:b"}, {"upstash-not-before": "tomorrow"}):
        with pytest.raises(BadValue):
            parse_publish_config(headers)
    assert canonical_header("x-my-HEADER") == "X-My-Header"


def test_cli_settings_validation_and_generated_secrets():
    settings, generated = build_settings(port=0, plan="free", fault_statuses="429,503")
    assert set(generated) == {"token", "current_signing_key", "next_signing_key"}
    assert settings.fault_statuses == (429, 503)
    assert "qstash_local_" not in repr(settings)  # secrets are SecretStr
    with pytest.raises(ServerConfigError, match="fault-statuses"):
        build_settings(fault_statuses="429,oops")
    with pytest.raises(ServerConfigError, match="fault_rate"):
        build_settings(fault_rate=2.0)


def test_bad_option_is_one_line_and_exit_code():
    proc = subprocess.run(
        [sys.executable, "-m", "qstash_server", "--port", "0", "--fault-rate", "7",
         "--token", "secret-token-value"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    assert "fault_rate" in proc.stderr
    assert "secret-token-value" not in proc.stderr + proc.stdout


def test_click_command_reports_config_errors():
    from click.testing import CliRunner

    from qstash_server.cli import qstash_command

    assert qstash_command.name == "qstash"
    result = CliRunner().invoke(qstash_command, ["--port", "0", "--fault-statuses", "x"])
    assert isinstance(result.exception, ServerConfigError)
    result = CliRunner().invoke(qstash_command, ["--plan", "gold"])
    assert result.exit_code == 2 and "gold" in result.output


def test_cron_tick_publishes_due_schedules_once(tmp_path):
    from qstash_server.engine import Broker
    from qstash_server.engine.timing import now_ms
    from qstash_server.settings import ServerSettings

    broker = Broker(ServerSettings(db=str(tmp_path / "s.db")))  # no dispatcher: nothing sent
    sid = broker.create_schedule(
        "http://127.0.0.1:9/tick", b"payload",
        {"upstash-cron": "CRON_TZ=Europe/Berlin */5 * * * *", "upstash-retries": "1",
         "upstash-forward-x-a": "1"},
        None,
    )
    sc = broker.schedules[sid]
    assert sc.next_at > now_ms()
    broker.tick_schedules()
    assert broker.messages == {}  # not due yet
    broker.pause_schedule(sid, True)
    sc.next_at = now_ms() - 1
    broker.tick_schedules()
    assert broker.messages == {}  # paused: the tick is ignored
    broker.pause_schedule(sid, False)
    sc.next_at = now_ms() - 1
    broker.tick_schedules()
    broker.tick_schedules()
    [msg] = broker.messages.values()
    assert (msg.schedule_id, msg.body, msg.max_retries) == (sid, b"payload", 1)
    assert msg.header == {"X-A": ["1"]}
    assert sc.last_states == {msg.id: "IN_PROGRESS"}
    assert sc.next_at > now_ms()
    broker.close()
    again = Broker(ServerSettings(db=str(tmp_path / "s.db")))
    assert list(again.messages) == [msg.id] and again.schedules[sid].last_at == sc.last_at
    again.close()


def test_unusable_database_path_is_one_clear_line():
    proc = subprocess.run(
        [sys.executable, "-m", "qstash_server", "--port", "0",
         "--db", "/nonexistent-folder/state.db", "--token", "t0ken-for-test",
         "--current-signing-key", "sig_a", "--next-signing-key", "sig_b"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr and "--db" in proc.stderr
    assert proc.stdout == ""
