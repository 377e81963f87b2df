"""The bridge's consumer settings: the user's (-X, --kafka-config, kafka.options) win over the
bridge's built-in defaults, an invalid value is refused, what the bridge needs is not negotiable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer

from migrator.bridge.config import BridgeConfig
from migrator.bridge.runner import Bridge
from migrator.kafka.consumer_config import BRIDGE_CONSUMER_DEFAULTS

# a valid value different from the bridge's default, for every key the bridge sets
USER_VALUES = {
    "queued.max.messages.kbytes": "4096",
    "queued.min.messages": "5000",
    "fetch.queue.backoff.ms": "50",
    "fetch.max.bytes": "1048576",
    "session.timeout.ms": "45000",
    "heartbeat.interval.ms": "3000",
    "partition.assignment.strategy": "range",
    "statistics.interval.ms": "5000",
    "auto.offset.reset": "latest",
}

CONFIG = (
    "kafka: {bootstrap_servers: '127.0.0.1:9'}\n"
    "routes: [{topic: t, destinations: [{kind: direct-http, url: 'http://127.0.0.1:9/x'}]}]\n"
)


def test_every_key_the_bridge_sets_is_listed() -> None:
    assert set(USER_VALUES) == {*BRIDGE_CONSUMER_DEFAULTS, "auto.offset.reset"}
    for key, value in USER_VALUES.items():
        assert BRIDGE_CONSUMER_DEFAULTS.get(key, "earliest") != value, key


@pytest.mark.parametrize("how", ["-X", "kafka.options", "--kafka-config"])
def test_the_users_settings_reach_librdkafka(how: str, tmp_path: Path) -> None:
    options: dict[str, str] = dict(USER_VALUES) if how == "kafka.options" else {}
    cfg = BridgeConfig.model_validate({
        "kafka": {"bootstrap_servers": "127.0.0.1:9", "options": options},
        "routes": [{"topic": "t", "destinations": [{"kind": "direct-http", "url": "http://127.0.0.1:9/x"}]}],
    })
    x = [f"{k}={v}" for k, v in USER_VALUES.items()] if how == "-X" else []
    props = None
    if how == "--kafka-config":
        props = tmp_path / "client.properties"
        props.write_text("".join(f"{k}={v}\n" for k, v in USER_VALUES.items()))
    connection = cfg.kafka.connection(properties_file=props, x_options=x, environ={})
    given: list[dict[str, Any]] = []

    def consumer(conf: dict[str, Any]) -> Any:  # the real client: it accepts what it is given
        given.append(conf)
        return Consumer(conf)

    bridge = Bridge(cfg, connection, consumer_factory=consumer)
    try:
        (conf,) = given
        assert {k: conf[k] for k in USER_VALUES} == USER_VALUES
        assert conf["enable.auto.commit"] == "false" and conf["enable.auto.offset.store"] == "false"
        assert bridge.consumer.cooperative is False  # range: eager rebalancing, assign() not incremental
    finally:
        bridge.consumer.close()


def test_without_user_settings_the_bridge_defaults_apply() -> None:
    cfg = BridgeConfig.model_validate({
        "kafka": {"bootstrap_servers": "127.0.0.1:9"},
        "routes": [{"topic": "t", "destinations": [{"kind": "direct-http", "url": "http://127.0.0.1:9/x"}]}],
    })
    given: list[dict[str, Any]] = []

    def factory(conf: dict[str, Any]) -> Any:
        given.append(conf)
        return Consumer(conf)

    bridge = Bridge(cfg, cfg.kafka.connection(environ={}), consumer_factory=factory)
    try:
        assert {k: given[0][k] for k in BRIDGE_CONSUMER_DEFAULTS} == BRIDGE_CONSUMER_DEFAULTS
        assert given[0]["auto.offset.reset"] == "earliest" and bridge.consumer.cooperative
    finally:
        bridge.consumer.close()


def _run(tmp_path: Path, *x: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "bridge.yaml"
    path.write_text(CONFIG)
    args = [a for option in x for a in ("-X", option)]
    try:
        return subprocess.run([sys.executable, "-m", "migrator", "bridge", "run", "--config", str(path),
                               *args], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired as exc:
        seen = str(exc.stderr)[-300:]
        raise AssertionError(f"the bridge started with -X {x} instead of refusing it: {seen}") from None


@pytest.mark.parametrize("key", sorted(USER_VALUES))
def test_an_invalid_value_is_one_line_exit_3(key: str, tmp_path: Path) -> None:
    proc = _run(tmp_path, f"{key}=notanumber")
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "notanumber" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("setting", ["enable.auto.commit=true", "enable.auto.offset.store=true",
                                     "group.id=other"])
def test_settings_the_bridge_manages_are_refused(setting: str, tmp_path: Path) -> None:
    proc = _run(tmp_path, setting)
    assert proc.returncode == 3, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert setting.partition("=")[0] in line
