"""A QStash endpoint is one small frozen type (URL + token as a secret), never a (url, token)
tuple: its fallbacks, its error, and the token staying out of everything printed."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from migrator.bridge.config import BridgeConfig
from migrator.config import UPSTASH_URL, QStashConnection
from migrator.errors import ConfigError
from migrator.stack.state import StackInfo

TOKEN = "tok-9f8e7d6c5b4a"


def test_flags_win_over_the_environment_and_upstash_is_the_default() -> None:
    env = {"QSTASH_URL": "http://env:1/", "QSTASH_TOKEN": "env-token"}
    given = QStashConnection.from_env("http://flag:2/", TOKEN, environ=env)
    assert (given.url, given.bearer) == ("http://flag:2", TOKEN)
    from_env = QStashConnection.from_env(environ=env)
    assert (from_env.url, from_env.bearer) == ("http://env:1", "env-token")
    assert QStashConnection.from_env(token=SecretStr(TOKEN), environ={}).url == UPSTASH_URL


def test_no_token_is_one_clear_config_error_naming_where_to_set_it() -> None:
    with pytest.raises(ConfigError, match=r"set QSTASH_TOKEN or pass --qstash-token"):
        QStashConnection.from_env(environ={})
    cfg = BridgeConfig.model_validate(
        {"routes": [{"topic": "t", "destinations": [{"kind": "workflow", "url": "http://h/w"}]}]})
    with pytest.raises(ConfigError, match=r"qstash\.token in the bridge config"):
        cfg.qstash.resolved({})


def test_the_token_never_prints_and_the_type_is_frozen() -> None:
    endpoint = QStashConnection.from_env("http://q:1", TOKEN, environ={})
    for text in (repr(endpoint), str(endpoint), endpoint.model_dump_json(), f"{endpoint}"):
        assert TOKEN not in text
    with pytest.raises(ValidationError):
        endpoint.url = "http://elsewhere"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        QStashConnection(url="http://q", token=SecretStr(TOKEN), extra="x")  # type: ignore[call-arg]


def test_the_bridge_config_and_the_local_stack_hand_out_the_same_type() -> None:
    cfg = BridgeConfig.model_validate(
        {"qstash": {"url": "http://q:1/", "token": TOKEN},
         "routes": [{"topic": "t", "destinations": [{"kind": "workflow", "url": "http://h/w"}]}]})
    assert cfg.qstash.resolved({}) == QStashConnection(url="http://q:1", token=SecretStr(TOKEN))
    info = StackInfo(bootstrap_servers="b:1", sasl_bootstrap_servers="b:2", sasl_username="u",
                     sasl_password="p", schema_registry_url="http://r", connect_url="http://c",
                     qstash_url="http://q:1", qstash_token=TOKEN, cluster_id="c", run_dir="/x",
                     lib_dir="/l")
    assert info.qstash == QStashConnection(url="http://q:1", token=SecretStr(TOKEN))
    assert info.model_copy(update={"qstash_token": None}).qstash is None
