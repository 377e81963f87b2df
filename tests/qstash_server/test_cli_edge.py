"""The server as its own package: ``migrator dev qstash`` maps its errors at the toolkit's CLI edge,
and a missing ``server`` extra is one clear line."""

from __future__ import annotations

import pytest

import qstash_server
from migrator.cli import main
from migrator.stack import servers


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    code = exit_info.value.code
    assert isinstance(code, int)
    return code, capsys.readouterr().err


def test_dev_qstash_maps_a_server_config_error_to_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["dev", "qstash", "--port", "0", "--db", "/nonexistent-folder/q.db",
                      "--token", "t0ken-never-shown"], capsys)
    assert code == 3, err
    assert err.startswith("Error: cannot open the QStash server database") and "--db" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "t0ken-never-shown" not in err


def test_dev_qstash_bad_option_is_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["dev", "qstash", "--port", "0", "--fault-statuses", "x"], capsys)
    assert code == 3, err
    assert "--fault-statuses" in err and len(err.strip().splitlines()) == 1


def test_missing_server_extra_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert qstash_server.missing_dependencies() is None
    monkeypatch.setattr(qstash_server, "REQUIRED_MODULES", ("starlette", "no_such_module_q7"))
    problem = qstash_server.missing_dependencies()
    assert problem is not None and "no_such_module_q7" in problem
    assert "pip install 'kafka-qstash-migrator[server]'" in problem
    assert servers.qstash_missing() == problem
    code, err = _run(["dev", "qstash", "--port", "0"], capsys)
    assert code == 8, err
    assert err.strip() == f"Error: {problem}"
